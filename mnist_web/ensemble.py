"""Several trained models of one architecture merged into a single wider model that averages their logits.

Each member keeps its own channels. The first convolution reads the shared input; every later convolution
and hidden Dense layer is block-diagonal (a member's units see only that member's units); batch norms are
side by side; the output layer answers the mean of the members' logits, so its softmax is the normalised
geometric mean of their probabilities. The result is the same plain Conv2D / BatchNormalization / MaxPool /
Dense chain, only wider, so every runtime (Keras, the folded NumPy and TensorFlow steps, ONNX Runtime) and the
refusal head run it unchanged, from the same JSON + weights files.
"""

import numpy as np


def merge(members):
    """One Keras model answering softmax(mean of the members' logits); the members must share one architecture.

    A member with more outputs than another (one trained with the not-a-digit class beside a digits-only one)
    gives the ensemble only the outputs they all have, the first ones: its digits' logits.
    """
    import keras

    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    outputs = min(member.layers[-1].units for member in members)
    first, count = next(m for m in members if m.layers[-1].units == outputs), len(members)
    output = first.layers[-1]

    def widen(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.Conv2D):
            config["filters"] *= count
        elif isinstance(layer, keras.layers.Dense) and layer is not output:
            config["units"] *= count
        return layer.__class__.from_config(config)

    merged = keras.models.clone_model(first, clone_function=widen)
    channels = None  # what a member's layer reads per position: the last convolution's or Dense layer's width
    for index, layer in enumerate(merged.layers):
        parts = [member.layers[index].get_weights() for member in members]
        if not parts[0]:
            continue
        if isinstance(layer, keras.layers.Conv2D):
            weights = [_conv_kernel([p[0] for p in parts], layer.get_weights()[0].shape)]
            weights += [np.concatenate([p[1] for p in parts])] if layer.use_bias else []
            channels = parts[0][0].shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            last = layer is merged.layers[-1]
            kept = slice(0, outputs if last else None)
            kernels = [p[0][:, kept] for p in parts]
            reads = channels if channels and kernels[0].shape[0] % channels == 0 else kernels[0].shape[0]
            weights = [_block_diagonal(kernels, reads, shared_out=last) / (count if last else 1)]
            if layer.use_bias:
                biases = [p[1][kept] for p in parts]
                weights.append(np.mean(biases, axis=0) if last else np.concatenate(biases))
            channels = kernels[0].shape[1]
        elif isinstance(layer, keras.layers.BatchNormalization):
            weights = [np.concatenate(column) for column in zip(*parts, strict=True)]
        else:
            raise ValueError(f"cannot merge a {layer.__class__.__name__} layer with weights")
        layer.set_weights(weights)
    return merged


def _conv_kernel(kernels, shape):
    """The members' (h, w, in, out) kernels side by side: on the shared input, or block-diagonal after it."""
    if shape[2] == kernels[0].shape[2]:
        return np.concatenate(kernels, axis=3)
    # A kernel is a Dense kernel at each of its h * w taps: the same block placement.
    flat = [kernel.reshape(-1, kernel.shape[3]) for kernel in kernels]
    return _block_diagonal(flat, kernels[0].shape[2], shared_out=False).reshape(shape)


def _block_diagonal(kernels, channels, shared_out):
    """The members' Dense kernels on the merged input: per position, member k's channels follow member k-1's.

    A Flatten of a channels-last map orders the merged input (position, member, channel), so member k's row
    for (position p, channel c) goes to p * count * channels + k * channels + c. With `shared_out` every
    member writes the same outputs (the logits, summed); otherwise each writes its own block.
    """
    count, (inputs, units) = len(kernels), kernels[0].shape
    positions = inputs // channels
    out_units = units if shared_out else count * units
    merged = np.zeros((positions, count * channels, out_units), kernels[0].dtype)
    for k, kernel in enumerate(kernels):
        cols = slice(0, units) if shared_out else slice(k * units, (k + 1) * units)
        merged[:, k * channels : (k + 1) * channels, cols] = kernel.reshape(positions, channels, units)
    return merged.reshape(positions * count * channels, out_units)

"""A second judge of "not a digit": small networks that read the model's inner features, not only its output.

The model's own not-a-digit output sees the drawing through the penultimate layer alone, which was trained to
tell digits apart; the flattened convolution features still hold what makes a letter or a doodle unlike any
digit. The head is a few one-hidden-layer networks (digit vs not-a-digit) on [flattened convolution features,
penultimate layer, log-probabilities], trained by train_keras.py on training digits and non-digits, their
mean logit the score (a small ensemble is steadier in the far tail where the threshold sits). The threshold
(`Calibration.head_at`) is chosen on validation data (calibration.fit_head_threshold); experiments/refusal/
RESULTS.md has the comparison with distance and energy scores that picked this design.

The members' standardisation is folded into their first layer and their averaged output layers into one vector,
so a score is one matrix product: relu(x @ hidden + hidden_bias) @ out + out_bias.
"""

import dataclasses
from pathlib import Path

import numpy as np

HEAD_FILE = "refusal_head.npz"
MEMBERS = 3
HIDDEN_UNITS = 64
EPOCHS = 30
BATCH_SIZE = 512
LEARNING_RATE = 1e-3
L2 = 1e-4


def head_features(outputs, classes):
    """(n, d) head inputs from a tapped run's (n, classes + taps) answer: the taps, then the log-probabilities."""
    outputs = np.asarray(outputs, np.float32)
    return np.concatenate([outputs[:, classes:], np.log(np.maximum(outputs[:, :classes], 1e-12))], axis=1)


@dataclasses.dataclass(frozen=True)
class RefusalHead:
    """The folded ensemble: score = relu(x @ hidden + hidden_bias) @ out + out_bias (higher: less like a digit)."""

    hidden: np.ndarray  # (features, members * units), standardisation folded in
    hidden_bias: np.ndarray  # (members * units,)
    out: np.ndarray  # (members * units,), already divided by the member count
    out_bias: float

    def scores(self, features):
        """(n,) float64 scores of (n, features) head inputs."""
        hidden = np.asarray(features, np.float32) @ self.hidden
        hidden += self.hidden_bias
        np.maximum(hidden, 0, out=hidden)
        return hidden.astype(np.float64) @ self.out + self.out_bias

    def save(self, model_dir):
        """Write model_dir/refusal_head.npz."""
        np.savez(Path(model_dir) / HEAD_FILE, **{k: np.asarray(v) for k, v in dataclasses.asdict(self).items()})

    @classmethod
    def load(cls, model_dir):
        """The model folder's head, or None where it has none."""
        path = Path(model_dir) / HEAD_FILE
        if not path.exists():
            return None
        with np.load(path) as saved:
            return cls(
                saved["hidden"].astype(np.float32),
                saved["hidden_bias"].astype(np.float32),
                saved["out"].astype(np.float64),
                float(saved["out_bias"]),
            )


def fit_refusal_head(digit_features, negative_features, seed, members=MEMBERS, epochs=EPOCHS):
    """Train the ensemble on head inputs of digits and of non-digits (classes weighted equally): a RefusalHead."""
    import keras

    x = np.concatenate([digit_features, negative_features]).astype(np.float64)
    y = np.concatenate([np.zeros(len(digit_features)), np.ones(len(negative_features))]).astype(np.float32)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    x = ((x - mean) / scale).astype(np.float32)
    weights = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean())).astype(np.float32)
    hidden, hidden_bias, out, out_bias = [], [], [], []
    for member in range(members):
        keras.utils.set_random_seed(seed + member)
        regularizer = keras.regularizers.l2(L2)
        net = keras.Sequential(
            [
                keras.Input((x.shape[1],)),
                keras.layers.Dense(HIDDEN_UNITS, activation="relu", kernel_regularizer=regularizer),
                keras.layers.Dense(1, kernel_regularizer=regularizer),
            ]
        )
        net.compile(keras.optimizers.Adam(LEARNING_RATE), keras.losses.BinaryCrossentropy(from_logits=True))
        net.fit(x, y, sample_weight=weights, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
        (w1, b1), (w2, b2) = (layer.get_weights() for layer in net.layers)
        # (x - mean) / scale @ w1 + b1 == x @ (w1 / scale) + (b1 - (mean / scale) @ w1)
        hidden.append(w1 / scale[:, None])
        hidden_bias.append(b1 - (mean / scale) @ w1)
        out.append(w2[:, 0] / members)
        out_bias.append(float(b2[0]))
    return RefusalHead(
        np.concatenate(hidden, axis=1).astype(np.float32),
        np.concatenate(hidden_bias).astype(np.float32),
        np.concatenate(out).astype(np.float64),
        float(np.mean(out_bias)),
    )

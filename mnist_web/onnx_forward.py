"""The folded model (mnist_web/folding.py) as one ONNX graph, run by ONNX Runtime.

The graph is built in memory from the same folded steps NumPy runs (no file to keep in step with the
weights), so the digits and the model version are the same on every runtime. ONNX Runtime's convolution
kernels run one image about 3x faster than NumPy's im2col here (README, Model runtimes), and load in
well under a second without TensorFlow.
"""

import numpy as np

from .folding import Conv, Dense, Flatten, MaxPool, Relu, Tap, Unfoldable, block_groups, dense_groups, fold, tapped
from .saved_model import saved_layers

OPSET = 13
# ONNX's SAME_UPPER puts an odd padding's extra row and column at the end, as TensorFlow's "same" does.
PADDING = {"valid": "VALID", "same": "SAME_UPPER"}
INPUT = "images"


def available():
    """Whether ONNX Runtime and the onnx package (which builds the graph) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


class _Graph:
    """Collects ONNX nodes and weights, naming each output after its node."""

    def __init__(self):
        from onnx import numpy_helper

        self.nodes, self.weights, self.last = [], [], INPUT
        self._numpy_helper = numpy_helper

    def weight(self, array, dtype=np.float32):
        name = f"w{len(self.weights)}"
        self.weights.append(self._numpy_helper.from_array(np.ascontiguousarray(array, dtype), name))
        return name

    def grouped_dense(self, kernel, width, groups):
        """x @ kernel for a block-diagonal kernel (block_groups), as one batched MatMul of the groups' blocks.

        The input is (n, positions * width) in Keras' flatten order (position, group, channel); each group's
        block reads its own channels at every position and writes its own outputs.
        """
        inputs, outputs = kernel.shape
        positions, channels, units = inputs // width, width // groups, outputs // groups
        blocks = kernel.reshape(positions, groups, channels, groups, units)
        stacked = np.stack([blocks[:, g, :, g, :].reshape(positions * channels, units) for g in range(groups)])
        self.add("Reshape", self.weight([-1, positions, groups, channels], np.int64))
        self.add("Transpose", perm=[2, 0, 1, 3])
        self.add("Reshape", self.weight([groups, -1, positions * channels], np.int64))
        self.add("MatMul", self.weight(stacked))
        self.add("Transpose", perm=[1, 0, 2])
        self.add("Reshape", self.weight([-1, outputs], np.int64))

    def add(self, op, *inputs, **attributes):
        from onnx import helper

        output = f"{op.lower()}{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, [self.last, *inputs], [output], **attributes))
        self.last = output

    def activation(self, name):
        if name == "relu":
            self.add("Relu")
        elif name == "softmax":
            self.add("Softmax", axis=-1)


def onnx_model(steps, input_shape=(28, 28, 1)):
    """A serialized ONNX model computing the folded steps on (n, h, w, c) float32 images, as Keras lays them out."""
    from onnx import TensorProto, checker, helper

    graph = _Graph()
    graph.add("Transpose", perm=[0, 3, 1, 2])  # ONNX convolves (n, c, h, w)
    channels_first = True
    kept = []
    width = input_shape[-1]  # channels of the last feature map, or units of the last Dense layer
    for step in steps:
        if isinstance(step, Tap):
            kept.append(graph.last)
        elif isinstance(step, Conv):
            # Keras kernels are (h, w, in, out); ONNX wants (out, in / groups, h, w), group g's outputs first.
            groups, width = block_groups(step.kernel), step.kernel.shape[3]
            kernel = step.kernel.transpose(3, 2, 0, 1)
            rows, cols = kernel.shape[0] // groups, kernel.shape[1] // groups
            kernel = np.concatenate(
                [kernel[g * rows : (g + 1) * rows, g * cols : (g + 1) * cols] for g in range(groups)]
            )
            graph.add(
                "Conv",
                graph.weight(kernel),
                graph.weight(step.bias),
                strides=list(step.strides),
                auto_pad=PADDING[step.padding],
                group=groups,
            )
            if step.activation == "softmax":
                raise Unfoldable("ONNX runtime: a softmax on a convolution's channels")
            graph.activation(step.activation)
        elif isinstance(step, MaxPool):
            window = {"kernel_shape": list(step.size), "strides": list(step.strides)}
            graph.add("MaxPool", auto_pad=PADDING[step.padding], **window)
        elif isinstance(step, Relu):
            graph.add("Relu")
        elif isinstance(step, Flatten):
            if channels_first:  # Keras flattens (h, w, c): the Dense weights expect that order
                graph.add("Transpose", perm=[0, 2, 3, 1])
                channels_first = False
            graph.add("Flatten", axis=1)
        elif isinstance(step, Dense):
            groups = dense_groups(step.kernel, width)
            if groups > 1:
                graph.grouped_dense(step.kernel, width, groups)
                graph.add("Add", graph.weight(step.bias))
            else:
                graph.add("Gemm", graph.weight(step.kernel), graph.weight(step.bias))
            graph.activation(step.activation)
            width = step.kernel.shape[1]
        else:
            raise Unfoldable(f"no ONNX step for {step!r}")
    if kept:  # the output, then the tapped activations, side by side
        graph.add("Concat", *kept, axis=1)
    image = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["n", *input_shape])
    output = helper.make_tensor_value_info(graph.last, TensorProto.FLOAT, ["n", None])
    model = helper.make_model(
        helper.make_graph(graph.nodes, "mnist_web", [image], [output], graph.weights),
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    model.ir_version = 8  # what ONNX Runtime releases of the last years all read
    checker.check_model(model)
    return model.SerializeToString()


class OnnxForward:
    """Probabilities for (n, h, w, c) float32 images, computed by one ONNX Runtime session."""

    def __init__(self, steps, threads=1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # One thread, no pool to spin: one 28x28 image is too small to split; the workers are the parallelism.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initializers and the like are not ours to act on
        self.session = onnxruntime.InferenceSession(onnx_model(steps), options, providers=["CPUExecutionProvider"])

    @classmethod
    def from_files(cls, json_path, weights_path, threads=1, taps=False):
        """Load the JSON config and .weights.h5 (with `taps`, see folding.tapped); Unfoldable if it cannot run it."""
        steps = fold(saved_layers(json_path, weights_path))
        return cls(tapped(steps) if taps else steps, threads)

    def __call__(self, images):
        """The model's output for one batch of images (any size; run() is safe from several threads)."""
        return self.session.run(None, {INPUT: np.asarray(images, np.float32)})[0]

    def batch(self, images, chunk=1024):
        """The model's output for any number of images, computed `chunk` at a time (bounded memory)."""
        images = np.asarray(images, np.float32)
        return np.concatenate([self(images[i : i + chunk]) for i in range(0, len(images), chunk)])

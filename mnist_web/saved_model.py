"""The saved model (Keras JSON config + Keras 3 .weights.h5) read without Keras, as `folding.fold` takes it.

Keras 3 stores a layer's variables under layers/<auto name>/vars/<i>, where the auto name is the snake_case
class name with a per-class counter (conv2d, conv2d_1, ..., dense_1), not the name in the JSON config.
"""

import json
import re
from collections import Counter

import h5py
import numpy as np

from .folding import Unfoldable


def saved_layers(json_path, weights_path):
    """The model's layers as (class name, config, weights) triples; Unfoldable if it is not a plain chain."""
    model = json.loads(open(json_path, encoding="utf-8").read())
    if model.get("class_name") not in ("Functional", "Sequential"):
        raise Unfoldable(f"model class {model.get('class_name')} is not supported")
    layers = model["config"]["layers"]
    if model["class_name"] == "Functional":
        _check_chain(model["config"])
    seen = Counter()
    triples = []
    with h5py.File(weights_path, "r") as weights:
        for layer in layers:
            kind, config = layer["class_name"], layer["config"]
            if layer.get("module", "keras.layers") != "keras.layers" or layer.get("registered_name"):
                raise Unfoldable(f"layer {config.get('name')} ({kind}) is a custom layer")
            _check_float32(kind, config)
            key = _snake_case(kind)
            stored = key if seen[key] == 0 else f"{key}_{seen[key]}"
            seen[key] += 1
            group = weights.get(f"layers/{stored}/vars")
            if group is None:
                triples.append((kind, config, []))
                continue
            triples.append((kind, config, [np.asarray(group[str(i)], np.float32) for i in range(len(group))]))
    return triples


def _check_chain(config):
    """Each layer's one input is the layer before it, and the model's input and output are the ends."""
    layers = config["layers"]
    names = [layer["config"]["name"] for layer in layers]
    for previous, layer in zip(names[:-1], layers[1:], strict=True):
        sources = [arg["config"]["keras_history"][0] for node in layer["inbound_nodes"] for arg in _tensors(node)]
        if sources != [previous]:
            raise Unfoldable(f"{layer['config']['name']} takes {sources}, not just {previous}: not a plain chain")
    ends = [_endpoint(config["input_layers"]), _endpoint(config["output_layers"])]
    if ends != [names[0], names[-1]]:
        raise Unfoldable(f"model input/output {ends} are not the chain's ends {names[0]}, {names[-1]}")


def _tensors(node):
    args = node.get("args", []) if isinstance(node, dict) else node
    return [arg for arg in args if isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__"]


def _endpoint(spec):
    # [name, 0, 0] for one tensor, [[name, 0, 0]] for a list of one
    if spec and isinstance(spec[0], list):
        if len(spec) != 1:
            raise Unfoldable(f"the model has {len(spec)} inputs or outputs")
        spec = spec[0]
    return spec[0]


def _check_float32(kind, config):
    dtype = config.get("dtype")
    name = dtype.get("config", {}).get("name") if isinstance(dtype, dict) else dtype
    if name not in (None, "float32"):
        raise Unfoldable(f"layer {config.get('name')} ({kind}) computes in {name}, not float32")


def _snake_case(class_name):
    # keras.src.utils.naming.to_snake_case
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()

"""Run the trained model over every cached input set and cache its internal features (issue 12).

For each .cache/refusal/<set>.npy (or .npz) writes .cache/refusal/feat_<set>.npz with
  flat (n, 1024)   Flatten output (before the first Dropout)
  pen  (n, 256)    the penultimate ReLU output (Dense + BatchNorm + ReLU, before the last Dropout/Dense)
  logits (n, 11)   pen @ W + b of the output layer (pre-softmax)
  prob (n, 11)     the model's raw softmax
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "refusal"  # ignored: rendered inputs and features (1.7 GB)
SETS = (
    "val_mnist",
    "val_canvas",
    "val_neg",
    "test_mnist",
    "test_canvas",
    "eval_neg",
    "train_mnist",
    "train_canvas",
    "train_neg",
    "train_neg2",
    "val_neg2",
    "train_neg3",
    "train_neg4",
)


def load_inputs(name):
    npz = CACHE / f"{name}.npz"
    if npz.exists():
        return np.load(npz)["inputs"]
    return np.load(CACHE / f"{name}.npy")


def extractor():
    import keras

    from mnist_web.recognizer import Recognizer

    model = Recognizer(ROOT / "model", inference="tensorflow").model
    flat = model.get_layer("flatten").output
    pen = model.get_layer("re_lu_4").output
    out = model.get_layer("probabilities")
    features = keras.Model(model.inputs, [flat, pen, out.output])
    kernel, bias = out.get_weights()
    return features, kernel, bias


def main(names):
    features, kernel, bias = None, None, None
    for name in names:
        target = CACHE / f"feat_{name}.npz"
        if target.exists() or not ((CACHE / f"{name}.npy").exists() or (CACHE / f"{name}.npz").exists()):
            continue
        if (
            (CACHE / f"{name}.npy").exists()
            and (CACHE / f"{name}.npy").stat().st_size == 0
            and not (CACHE / f"{name}.npz").exists()
        ):
            continue
        if features is None:
            features, kernel, bias = extractor()
        x = load_inputs(name)[..., None].astype(np.float32)
        flat, pen, prob = features.predict(x, batch_size=512, verbose=0)
        logits = pen.astype(np.float64) @ kernel + bias
        np.savez(
            target,
            flat=flat.astype(np.float32),
            pen=pen.astype(np.float32),
            logits=logits.astype(np.float32),
            prob=prob.astype(np.float32),
        )
        print(name, x.shape, flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or SETS)

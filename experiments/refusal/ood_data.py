"""Render and cache the model inputs (28x28 float32) for the OOD-score experiment (issue 12).

Writes .cache/refusal/<name>.npy. Sets:
  train_mnist / train_canvas   training digits (MNIST train minus the validation split), one canvas drawing each
  val_mnist / val_canvas       the 6,000 validation digits and their canvas drawings (seed 2026+1, as train_keras)
  val_neg                      validation negatives (training generator, seed 2026+7, as train_keras)
  train_neg                    training negatives for a head (training generator, seed 4242: not 2026 / 2033)
  train_neg2 / val_neg2        negatives of the freehand-like generator (mnist_web.not_digits traced_drawing)
  train_neg3 / train_neg4     more training negatives for the heads (new generator seed 5355, training generator 4343)
  test_mnist / test_canvas     evaluation: MNIST test and the canvas set (evaluation.canvas_inputs, CANVAS_SEED)
  eval_neg                     evaluation freehand non-digits (evaluation.not_digit_inputs(2000)); never fitted on
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / ".cache" / "refusal"  # ignored: rendered inputs and features (1.7 GB)
SEED = 2026
CHUNKS = 8


def canvas(images, seed):
    from mnist_web.canvas import canvas_model_inputs

    chunks = np.array_split(np.arange(len(images)), CHUNKS)  # as train_keras.render_canvas (copies=1)
    return np.concatenate([canvas_model_inputs(images[c], seed * 1000 + n) for n, c in enumerate(chunks)])


def negatives(count, seed):
    from mnist_web.not_digits import training_model_inputs

    sizes = [len(c) for c in np.array_split(np.arange(count), CHUNKS)]  # as train_keras.render_negatives
    return np.concatenate([training_model_inputs(s, seed * 1000 + n) for n, s in enumerate(sizes)])


def save(name, make):
    path = CACHE / f"{name}.npy"
    if path.exists():
        return
    started = time.time()
    value = make()
    if isinstance(value, dict):
        np.savez(CACHE / f"{name}.npz", **value)
        path.write_bytes(b"")  # marker
    else:
        np.save(path, value)
    print(f"{name}: {time.time() - started:.0f} s", flush=True)


def main():
    from mnist_web.datasets import load_mnist
    from mnist_web.evaluation import canvas_inputs, not_digit_inputs

    CACHE.mkdir(parents=True, exist_ok=True)
    (x_all, y_all), (x_test, y_test) = load_mnist()
    order = np.random.default_rng(SEED).permutation(len(x_all))
    val_idx, train_idx = order[:6000], order[6000:]
    np.save(CACHE / "labels_train.npy", y_all[train_idx])
    np.save(CACHE / "labels_val.npy", y_all[val_idx])
    np.save(CACHE / "labels_test.npy", y_test)
    save("val_mnist", lambda: x_all[val_idx].astype(np.float32) / 255.0)
    save("test_mnist", lambda: x_test.astype(np.float32) / 255.0)
    save("train_mnist", lambda: x_all[train_idx].astype(np.float32) / 255.0)
    save("val_canvas", lambda: canvas(x_all[val_idx], SEED + 1))
    save("val_neg", lambda: negatives(3000, SEED + 7))
    save(
        "eval_neg",
        lambda: dict(
            zip(
                ("inputs", "kinds", "read"),
                (lambda r: (r[0], np.array(r[1]), r[2]))(not_digit_inputs(2000)),
                strict=False,
            )
        ),
    )
    save("test_canvas", lambda: dict(zip(("inputs", "labels", "accepted"), canvas_inputs(), strict=False)))
    save("train_canvas", lambda: canvas(x_all[train_idx], 5151))
    save("train_neg", lambda: negatives(12000, 4242))
    from mnist_web.not_digits import training_model_inputs

    def model_inputs(count, seed):
        return training_model_inputs(count, seed, traced=True)

    save("train_neg2", lambda: model_inputs(12000, 5353))  # the new freehand-like generator
    save("val_neg2", lambda: model_inputs(3000, 5354))
    save("train_neg3", lambda: model_inputs(24000, 5355))  # more of the new generator, for the heads
    save("train_neg4", lambda: negatives(12000, 4343))  # more of the training generator, for the heads


if __name__ == "__main__":
    main()

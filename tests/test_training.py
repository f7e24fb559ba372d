"""train_keras.py runs top to bottom and writes everything the service and the README rely on."""

import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from mnist_web.datasets import load_mnist
from mnist_web.preprocessing import image_format
from mnist_web.recognizer import MODEL_JSON, MODEL_WEIGHTS, Recognizer
from mnist_web.refusal_head import HEAD_FILE

REPO = Path(__file__).resolve().parent.parent


def train(*args, timeout=900):
    """Run train_keras.py with these arguments from the repository root."""
    return subprocess.run(
        [sys.executable, "train_keras.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def test_short_training_run_writes_a_loadable_model_metrics_and_plots(tmp_path):
    output = tmp_path / "model"
    result = train("--epochs", "1", "--limit", "1024", "--output", str(output), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    model = keras.models.model_from_json((output / MODEL_JSON).read_text())
    model.load_weights(output / MODEL_WEIGHTS)
    assert {"Conv2D", "MaxPooling2D", "Dense"} <= {type(layer).__name__ for layer in model.layers}
    recognizer = Recognizer(output)  # the service's own loader takes it as it is
    assert recognizer.version.startswith("cnn-")

    metrics = json.loads((output / "metrics.json").read_text())
    confusion = metrics["confusion_matrix"]
    assert sum(map(sum, confusion)) == 10_000  # the whole test set, once
    correct = sum(confusion[d][d] for d in range(10))
    assert metrics["test_accuracy"] == correct / 10_000
    assert metrics["test_errors"] == 10_000 - correct
    assert metrics["test_accuracy"] > 0.2  # eight steps already learn something; chance is 0.1
    assert set(metrics["per_class_accuracy"]) == {str(d) for d in range(10)}
    assert metrics["epochs"] == 1 and metrics["hyper_parameters"]["EPOCHS"] == 1
    assert 0 < metrics["validation_accuracy"] <= 1 and 0 < metrics["validation_canvas_accuracy"] <= 1
    assert metrics["training_seconds"] > 0
    assert {"python", "tensorflow", "keras", "numpy"} <= set(metrics["versions"])
    calibration = json.loads((output / "calibration.json").read_text())
    assert 0.05 < calibration["temperature"] < 20 and 0.5 <= calibration["refuse_at"] < 1
    assert recognizer.classes == 11 and recognizer.calibration.refuse_at == calibration["refuse_at"]
    # The refusal head is written beside the model, its threshold in calibration.json, and the service uses it.
    assert (output / HEAD_FILE).exists() and isinstance(calibration["head_at"], float)
    assert recognizer.head is not None and recognizer.calibration.head_at == calibration["head_at"]
    assert metrics["test_refused"] == sum(row[10] for row in confusion)
    for plot in ("learning-curves.png", "confusion-matrix.png"):
        assert image_format((output / plot).read_bytes()) == "png"


def load_model(folder):
    model = keras.models.model_from_json((folder / MODEL_JSON).read_text())
    model.load_weights(folder / MODEL_WEIGHTS)
    return model


def test_refit_refusal_changes_only_the_not_a_digit_output(tmp_path):
    """--refit-refusal trains nothing but the not-a-digit row of the output layer, then calibrates anew."""
    output = tmp_path / "refit"
    result = train("--init-from", "model", "--refit-refusal", "--limit", "512", "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = load_model(REPO / "model"), load_model(output)
    for old, new in zip(before.layers[:-1], after.layers[:-1], strict=True):
        assert all((a == b).all() for a, b in zip(old.get_weights(), new.get_weights(), strict=True)), old.name
    (old_kernel, old_bias), (new_kernel, new_bias) = before.layers[-1].get_weights(), after.layers[-1].get_weights()
    assert (old_kernel[:, :10] == new_kernel[:, :10]).all() and (old_bias[:10] == new_bias[:10]).all()
    assert not (old_kernel[:, 10] == new_kernel[:, 10]).all()  # the not-a-digit row was fitted
    # Pen-traced training digits are among the digits learnt from (TRACED_DIGITS, in proportion to --limit).
    kept = re.search(r"(\d+) of (\d+) pen-traced digits still read as their digit", result.stderr)
    assert kept and int(kept[2]) > 0 and int(kept[1]) >= 0.9 * int(kept[2]), result.stderr[-3000:]
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["refit_refusal_only"] and metrics["epochs"] == 0
    assert metrics["test_accuracy"] > 0.99  # the digits' answers are the trained model's
    calibration = json.loads((output / "calibration.json").read_text())
    # A 512-digit run's refit and head, on the committed digit model's features, refuse 43 % of the validation
    # non-digits (a full run: 89.6 %); a refit that learnt nothing would refuse next to none at this digit budget.
    assert 0.5 <= calibration["refuse_at"] < 1 and calibration["validation"]["negatives"]["refused"] > 0.3
    assert (output / HEAD_FILE).exists() and isinstance(calibration["head_at"], float)
    assert image_format((output / "confusion-matrix.png").read_bytes()) == "png"
    # Without --init-from there is no model to refit.
    refused = train("--refit-refusal", "--output", str(tmp_path / "none"), timeout=120)
    assert refused.returncode != 0 and "--init-from" in refused.stderr


def test_several_init_from_folders_make_an_ensemble_with_the_members_digit_logits(tmp_path):
    """--init-from A B merges the models (mnist_web/ensemble.py) before the refit: twice one model reads as it."""
    output = tmp_path / "ensemble"
    result = train("--init-from", "model", "model", "--refit-refusal", "--limit", "512", "--output", str(output))
    assert result.returncode == 0, result.stderr[-3000:]
    single, merged = load_model(REPO / "model"), load_model(output)
    assert merged.layers[1].filters == 2 * single.layers[1].filters
    images = np.random.default_rng(5).uniform(0, 1, (64, 28, 28, 1)).astype("float32")
    images[:32] = load_mnist()[1][0][:32, ..., None] / 255.0

    def digit_logits(model):  # log-probabilities of the ten digits, up to each image's constant
        logs = np.log(np.asarray(model(images, training=False), np.float64))[:, :10]
        return logs - logs[:, :1]

    np.testing.assert_allclose(digit_logits(merged), digit_logits(single), atol=1e-3)
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["initialised_from"] == ["model", "model"] and metrics["test_accuracy"] > 0.99
    assert Recognizer(output).version != Recognizer(REPO / "model").version
    # An ensemble's members are not trained further.
    refused = train("--init-from", "model", "model", "--output", str(tmp_path / "none"), timeout=120)
    assert refused.returncode != 0 and "ensemble" in refused.stderr


def test_digits_only_run_writes_a_ten_output_member_an_ensemble_can_take(tmp_path):
    """--digits-only trains the ten digits alone (no not-a-digit class, head or calibration): an ensemble member."""
    output = tmp_path / "member"
    result = train("--digits-only", "--epochs", "1", "--limit", "1024", "--output", str(output), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    member = load_model(output)
    assert member.layers[-1].units == 10
    assert not (output / "calibration.json").exists() and not (output / HEAD_FILE).exists()
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["digits_only"] and sum(map(sum, metrics["confusion_matrix"])) == 10_000
    assert metrics["test_accuracy"] > 0.2 and 0 < metrics["validation_canvas_accuracy"] <= 1
    # It can start a fine-tuning run of its own kind, but not one of fewer outputs than it has.
    refused = train("--digits-only", "--init-from", "model", "--output", str(tmp_path / "none"), timeout=120)
    assert refused.returncode != 0 and "11 outputs" in refused.stderr

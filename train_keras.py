"""Train the mnist_web digit recognizer: a small Conv2D/MaxPool/Dense CNN on MNIST, plus "not a digit".

Reads top to bottom: data (MNIST digits, their canvas drawings, and generated non-digit drawings as an
eleventh class), augmentation, model, training, calibration on validation data (temperature and the
refusal threshold), the single final test, and the artefacts the service loads (model/model_mnist.json +
model/model_mnist.weights.h5 + model/calibration.json) with metrics and plots.

    python train_keras.py [--epochs 45] [--output model] [--data-dir ../shared/mnist] [--limit N]
    python train_keras.py --init-from model --epochs 4   # fine-tune a trained model (README, Training runs)
    python train_keras.py --init-from model --refit-refusal   # refit only the not-a-digit output (minutes)
    python train_keras.py --digits-only --output /tmp/member   # ten outputs only: a member for an ensemble
"""

import argparse
import dataclasses
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

# --- Hyper-parameters -------------------------------------------------------------------------
SEED = 2026
EPOCHS = 45
BATCH_SIZE = 128
VALIDATION_SIZE = 6_000  # held out of the 60,000 training images
PEAK_LEARNING_RATE = 2e-3  # Adam, cosine-decayed to zero over the run
LABEL_SMOOTHING = 0.05
DROPOUT = 0.4
DENSE_UNITS = 256
# Augmentation, in the spirit of real drawings: small turns, size changes, shifts, pen widths.
ROTATION_DEGREES = 10
ZOOM = 0.10
SHIFT_PIXELS = 2
STROKE_CHANGE_PROBABILITY = 0.3
# Each training sample is, half of the time, the same digit drawn on a 280x280 canvas and put through
# the service's own preprocessing, so that the model knows what real drawings turn into.
CANVAS_FRACTION = 0.5
CANVAS_COPIES = 1  # random drawings of each training digit (2 traded MNIST-test for canvas accuracy)
CANVAS_CHUNKS = 8  # fixed, so the drawings do not depend on the number of CPUs
# The eleventh class: drawings that are not digits (mnist_web/not_digits.py: fonts, shapes, scribbles, and
# glyph centre lines traced with a round pen), each kind with its own validation drawings.
CLASSES = 11
NEGATIVES = 30_000
TRACED_NEGATIVES = 24_000
VALIDATION_NEGATIVES = 3_000
# Training digits' centre lines traced with a round pen (mnist_web/pen_trace.py), as the traced non-digits
# are: among the digits the not-a-digit output and the refusal head learn from, so that a uniform round pen
# is not itself a sign of "not a digit". Only those the model still reads as their digit are kept.
TRACED_DIGITS = 12_000
NEGATIVE_FRACTION = 0.15  # of every batch
# The refusal threshold refuses at most this share of the validation digits (MNIST and canvas drawings),
# and never less than an even chance of not being a digit.
MAX_DIGIT_REFUSAL = 0.0005
# Fine-tuning (--init-from): a gentler peak learning rate, the schedule otherwise the same.
FINE_TUNE_LEARNING_RATE = 3e-4
# Epochs of each refusal-head network (mnist_web/refusal_head.py has the rest of its settings).
HEAD_EPOCHS = 30
# --refit-refusal: full-batch Adam on the not-a-digit row of the output layer, every other weight frozen.
REFIT_STEPS = 600
REFIT_LEARNING_RATE = 0.01
REFIT_L2 = 1e-4


def parse_args():
    from mnist_web.datasets import default_data_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "model")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="folder with the four MNIST IDX .gz files (default: $MNIST_DATA_DIR or ../shared/mnist); "
        "without them Keras downloads MNIST",
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help="initial weights, sampling and drawings (the validation split is fixed)"
    )
    parser.add_argument("--limit", type=int, help="train on only this many training images (quick checks)")
    parser.add_argument(
        "--init-from",
        type=Path,
        nargs="+",
        help="start from the weights of a trained model folder (a 10-class one gains the not-a-digit class); "
        "several folders are merged into one model that averages their logits (an ensemble, --refit-refusal only)",
    )
    parser.add_argument(
        "--digits-only",
        action="store_true",
        help="train the ten digit outputs alone (no not-a-digit class, head or calibration): a member for "
        "--init-from A B --refit-refusal",
    )
    parser.add_argument(
        "--refit-refusal",
        action="store_true",
        help="with --init-from: train nothing but the not-a-digit output, on the frozen features, then calibrate",
    )
    return parser.parse_args()


def main():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args()
    if args.refit_refusal and not args.init_from:
        raise SystemExit("--refit-refusal needs --init-from: the model whose not-a-digit output is refitted")
    if args.init_from and len(args.init_from) > 1 and not args.refit_refusal:
        raise SystemExit("several --init-from folders make an ensemble, whose members are not trained further")
    if args.digits_only and args.refit_refusal:
        raise SystemExit("--digits-only trains no not-a-digit output to refit")

    import keras
    import tensorflow as tf
    from keras import layers

    from mnist_web.calibration import NOT_A_DIGIT, Calibration, answer_ece, fit_calibration, fit_head_threshold
    from mnist_web.datasets import load_mnist
    from mnist_web.recognizer import keras_forward
    from mnist_web.refusal_head import fit_refusal_head, head_features

    keras.utils.set_random_seed(args.seed)
    started = time.time()

    # --- Data: a validation split from the training images; the test images wait for the end ---
    # The split is SEED's whatever --seed is: every run holds out the same digits, so an ensemble's members
    # never learnt from the digits its calibration and refusal threshold are fitted on.
    (x_all, y_all), (x_test, y_test) = load_mnist(args.data_dir)
    order = np.random.default_rng(SEED).permutation(len(x_all))
    val_idx, train_idx = order[:VALIDATION_SIZE], order[VALIDATION_SIZE:][: args.limit]
    x_train = x_all[train_idx].astype("float32") / 255.0
    y_train = y_all[train_idx]
    x_val = x_all[val_idx].astype("float32") / 255.0
    y_val = y_all[val_idx]
    logging.info("drawing each of %d training digits %d times on a canvas", len(x_train), CANVAS_COPIES)
    x_canvas = render_canvas(x_all[train_idx], args.seed, CANVAS_COPIES)
    classes, negative_fraction = (10, 0.0) if args.digits_only else (CLASSES, NEGATIVE_FRACTION)
    x_negative = x_val_negative = x_traced = np.zeros((0, 28, 28), np.float32)
    y_traced = np.zeros(0, np.uint8)
    if not args.digits_only:
        logging.info(
            "drawing non-digits for training (%d in a full run) and %d for validation", NEGATIVES, VALIDATION_NEGATIVES
        )
        # A shorter run (--limit) draws proportionally fewer.
        share = len(x_train) / (len(x_all) - VALIDATION_SIZE)
        x_negative = np.concatenate(
            [
                render_negatives(int(NEGATIVES * share), args.seed),
                render_negatives(int(TRACED_NEGATIVES * share), args.seed + 3, traced=True),
            ]
        )
        x_val_negative = np.concatenate(
            [
                render_negatives(VALIDATION_NEGATIVES, args.seed + 7),
                render_negatives(VALIDATION_NEGATIVES, args.seed + 9, traced=True),
            ]
        )
        logging.info("tracing the centre lines of %d training digits with a round pen", int(TRACED_DIGITS * share))
        x_traced = render_canvas(x_all[train_idx][: int(TRACED_DIGITS * share)], args.seed + 11, 1, traced=True)
        y_traced = y_train[: len(x_traced)]
    pool_x = np.concatenate([x_train, x_canvas, x_negative])[..., None]
    pool_y = np.concatenate([y_train] * (1 + CANVAS_COPIES) + [np.full(len(x_negative), NOT_A_DIGIT, np.uint8)])
    steps_per_epoch = len(x_train) // BATCH_SIZE
    # Each sample is an original digit or one of its canvas drawings, in CANVAS_FRACTION proportion, or,
    # NEGATIVE_FRACTION of the time, a drawing that is not a digit.
    weights = np.concatenate(
        [
            np.full(len(x_train), (1 - CANVAS_FRACTION) * (1 - negative_fraction) / len(x_train)),
            np.full(len(x_canvas), CANVAS_FRACTION * (1 - negative_fraction) / len(x_canvas)),
            np.full(len(x_negative), negative_fraction / max(len(x_negative), 1)),
        ]
    )
    sample_prob = weights / weights.sum()

    # --- Augmentation (tf.data, outside the model, so the saved model is plain layers) ---
    geometric = keras.Sequential(
        [
            layers.RandomRotation(ROTATION_DEGREES / 360.0, fill_mode="constant", seed=args.seed),
            layers.RandomZoom(ZOOM, fill_mode="constant", seed=args.seed + 1),
            layers.RandomTranslation(
                SHIFT_PIXELS / 28.0, SHIFT_PIXELS / 28.0, fill_mode="constant", seed=args.seed + 2
            ),
        ]
    )

    def change_stroke(images):
        thicker = tf.nn.max_pool2d(images, 3, 1, "SAME")
        thinner = 0.5 * (images - tf.nn.max_pool2d(-images, 3, 1, "SAME"))
        pick = tf.random.uniform([tf.shape(images)[0], 1, 1, 1])
        half = STROKE_CHANGE_PROBABILITY / 2
        return tf.where(pick < half, thicker, tf.where(pick < 2 * half, thinner, images))

    def augment(images, labels):
        images = tf.clip_by_value(change_stroke(geometric(images, training=True)), 0.0, 1.0)
        return images, tf.one_hot(labels, classes)

    def epoch_batches():
        rng = np.random.default_rng(args.seed)
        while True:
            idx = rng.choice(len(pool_x), size=steps_per_epoch * BATCH_SIZE, p=sample_prob)
            for start in range(0, len(idx), BATCH_SIZE):
                batch = idx[start : start + BATCH_SIZE]
                yield pool_x[batch], pool_y[batch]

    train_ds = (
        tf.data.Dataset.from_generator(
            epoch_batches,
            output_signature=(tf.TensorSpec((None, 28, 28, 1), tf.float32), tf.TensorSpec((None,), tf.uint8)),
        )
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_x = np.concatenate([x_val, x_val_negative])[..., None]
    val_y = np.concatenate([y_val, np.full(len(x_val_negative), NOT_A_DIGIT, np.uint8)])
    val_ds = tf.data.Dataset.from_tensor_slices((val_x, tf.one_hot(val_y, classes))).batch(1024)

    # --- Model: Conv/Conv/MaxPool twice, then Dense. The classic Conv 32@5x5 / pool / Conv 64@5x5 / pool
    # was the start; two 3x3 convolutions in place of each 5x5 see as far with fewer multiplications and one
    # more non-linearity, and scored higher on both validation sets (README, "Training runs").
    def conv(x, filters):
        x = layers.Conv2D(filters, 3, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    if args.init_from:
        model = start_from(args.init_from, classes)
    else:
        inputs = keras.Input((28, 28, 1), name="digit")
        x = layers.MaxPooling2D()(conv(conv(inputs, 32), 32))
        x = layers.MaxPooling2D()(conv(conv(x, 64), 64))
        x = layers.Flatten()(x)
        x = layers.Dropout(DROPOUT)(x)
        x = layers.Dense(DENSE_UNITS, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        x = layers.Dropout(DROPOUT)(x)
        outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
        model = keras.Model(inputs, outputs, name="mnist_cnn")
    model.summary()

    peak = FINE_TUNE_LEARNING_RATE if args.init_from else PEAK_LEARNING_RATE
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=args.epochs * steps_per_epoch, warmup_target=peak, warmup_steps=steps_per_epoch
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=LABEL_SMOOTHING),
        metrics=["accuracy"],
        # XLA's CPU convolutions train about 3x slower than TensorFlow's oneDNN kernels on this model.
        jit_compile=False,
    )

    # --- Training (or, with --refit-refusal, only the not-a-digit output) ---
    if args.refit_refusal:
        history = None
        x_traced = recognised(model, x_traced, y_traced)
        refit_refusal(model, np.concatenate([x_train, x_canvas, x_traced]), x_negative)
    else:
        history = model.fit(
            train_ds, epochs=args.epochs, steps_per_epoch=steps_per_epoch, validation_data=val_ds, verbose=1
        )
        x_traced = recognised(model, x_traced, y_traced)
    training_seconds = time.time() - started
    if args.digits_only:
        x_val_canvas = render_canvas(x_all[val_idx], args.seed + 1, copies=1)
        save_digit_member(model, args, history, training_seconds, (x_val, x_val_canvas, y_val), (x_test, y_test))
        return

    # The model's answers with its inner features beside them (the refusal head's inputs), in chunks.
    tapped = keras_forward(model, taps=True)

    def run(images):
        answered = np.concatenate(
            [np.asarray(tapped(images[i : i + 1024, ..., None])) for i in range(0, len(images), 1024)]
        )
        return answered[:, :CLASSES], head_features(answered, CLASSES)

    # --- The refusal head (mnist_web/refusal_head.py): on the training digits, new canvas drawings of them
    # (not the ones the model learnt from) and the training non-digits ---
    logging.info("fitting the refusal head")
    x_head_canvas = render_canvas(x_all[train_idx], args.seed + 5, copies=1)
    head = fit_refusal_head(
        np.concatenate([run(x_train)[1], run(x_head_canvas)[1], run(x_traced)[1]]),
        run(x_negative)[1],
        args.seed,
        epochs=HEAD_EPOCHS,
    )
    del x_head_canvas

    # --- Calibration, on validation data only: MNIST digits, their canvas drawings, non-digits ---
    # The canvas drawings of the validation digits are also the figure to choose between runs by.
    x_val_canvas = render_canvas(x_all[val_idx], args.seed + 1, copies=1)
    raw, scores = {}, {}
    for name, x in (("mnist", x_val), ("canvas", x_val_canvas), ("negatives", x_val_negative)):
        raw[name], features = run(x)
        scores[name] = head.scores(features)
    validation_accuracy = float((np.concatenate([raw["mnist"], raw["negatives"]]).argmax(axis=1) == val_y).mean())
    labels = {"mnist": y_val, "canvas": y_val, "negatives": np.full(len(x_val_negative), NOT_A_DIGIT)}
    all_raw, all_scores = np.concatenate(list(raw.values())), np.concatenate(list(scores.values()))
    all_labels = np.concatenate(list(labels.values()))
    digit_raw = np.concatenate([raw["mnist"], raw["canvas"]])
    # Temperature, not-a-digit bias, and the threshold that refuses MAX_DIGIT_REFUSAL of validation digits;
    # then that budget shared between the model's own refusals and the head's.
    calibration = fit_calibration(digit_raw, np.concatenate([labels["mnist"], labels["canvas"]]), MAX_DIGIT_REFUSAL)
    uncalibrated = Calibration(1.0, calibration.refuse_at)  # "before" figures: no temperature, bias or head
    calibration = fit_head_threshold(
        calibration,
        digit_raw,
        np.concatenate([scores["mnist"], scores["canvas"]]),
        raw["negatives"],
        scores["negatives"],
        MAX_DIGIT_REFUSAL,
    )
    validation = {}
    for name, probabilities in raw.items():
        answers = calibration.classes(calibration.apply(probabilities, scores[name]))
        validation[name] = {
            "accuracy": float((answers == labels[name]).mean()),
            "refused": float((answers == NOT_A_DIGIT).mean()),
        }
    validation["ece_before"] = answer_ece(uncalibrated, all_raw, all_labels)
    validation["ece_after"] = answer_ece(calibration, all_raw, all_labels, all_scores)
    validation_canvas_accuracy = validation["canvas"]["accuracy"]
    logging.info("calibration %s; validation %s", calibration, validation)

    # --- The test set, used once (a refusal counts as wrong) ---
    probabilities, features = run(x_test.astype("float32") / 255.0)
    test_scores = head.scores(features)
    predicted = calibration.classes(calibration.apply(probabilities, test_scores))
    confusion, test_figures = score_test_set(predicted, y_test, CLASSES)
    test_ece = {"before": answer_ece(uncalibrated, probabilities, y_test)}
    test_ece["after"] = answer_ece(calibration, probabilities, y_test, test_scores)
    logging.info("ECE on the test set %s", test_ece)

    # --- Artefacts ---
    args.output.mkdir(parents=True, exist_ok=True)
    calibration.save(args.output, validation=validation)
    head.save(args.output)
    metrics = {
        **test_figures,
        "validation_accuracy": validation_accuracy,
        "validation_canvas_accuracy": validation_canvas_accuracy,
        "test_refused": int((predicted == NOT_A_DIGIT).sum()),
        "test_ece": test_ece,
        "calibration": {**dataclasses.asdict(calibration), "validation": validation},
    }
    write_model(model, args, metrics, history, confusion, training_seconds)


def save_digit_member(model, args, history, training_seconds, validation, test):
    """--digits-only: score the ten-output model on validation (MNIST, canvas) and once on the test set; write it."""
    x_val, x_val_canvas, y_val = validation
    x_test, y_test = test

    def answers(images):
        return model.predict(images[..., None], batch_size=1024, verbose=0).argmax(axis=1)

    confusion, test_figures = score_test_set(answers(x_test.astype("float32") / 255.0), y_test, 10)
    metrics = {
        **test_figures,
        "validation_accuracy": float((answers(x_val) == y_val).mean()),
        "validation_canvas_accuracy": float((answers(x_val_canvas) == y_val).mean()),
        "digits_only": True,
    }
    write_model(model, args, metrics, history, confusion, training_seconds)


def score_test_set(predicted, labels, classes):
    """(confusion matrix, metrics.json's test figures) of the answered classes on the test set; logs the accuracy."""
    confusion = np.zeros((10, classes), int)
    np.add.at(confusion, (labels, predicted), 1)
    errors = int((predicted != labels).sum())
    accuracy = float((predicted == labels).mean())
    logging.info("test accuracy %.4f (%d errors of %d)", accuracy, errors, len(labels))
    return confusion, {
        "test_accuracy": accuracy,
        "test_errors": errors,
        "per_class_accuracy": {str(d): float(confusion[d, d] / confusion[d].sum()) for d in range(10)},
        "confusion_matrix": confusion.tolist(),
    }


def write_model(model, args, metrics, history, confusion, training_seconds):
    """Write the model (JSON + weights), metrics.json with the run's settings and versions, and the plots."""
    import keras
    import tensorflow as tf

    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "model_mnist.json").write_text(model.to_json(indent=1))
    model.save_weights(args.output / "model_mnist.weights.h5")
    epochs = 0 if args.refit_refusal else args.epochs
    metrics = {
        **metrics,
        "initialised_from": [str(folder) for folder in args.init_from] if args.init_from else None,
        "refit_refusal_only": args.refit_refusal,
        "epochs": epochs,
        "seed": args.seed,
        "training_seconds": round(training_seconds, 1),
        "hyper_parameters": {
            **{name: value for name, value in globals().items() if name.isupper() and isinstance(value, (int, float))},
            "EPOCHS": epochs,
            "SEED": args.seed,
        },
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
        },
        "machine": {"processor": platform.processor() or platform.machine(), "cpus": __import__("os").cpu_count()},
    }
    (args.output / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    save_plots(history.history if history else None, confusion, args.output)
    logging.info("wrote %s in %.0f s", args.output, training_seconds)


def render_canvas(images, seed, copies, traced=False):
    """`copies` canvas drawings of every image (or, with `traced`, of its centre line), preprocessed, on all CPUs."""
    import multiprocessing

    from mnist_web.canvas import canvas_model_inputs
    from mnist_web.pen_trace import traced_digit_model_inputs

    chunks = np.array_split(np.arange(len(images)), CANVAS_CHUNKS)
    jobs = [
        (images[chunk], seed * 1000 + copy * CANVAS_CHUNKS + number)
        for copy in range(copies)
        for number, chunk in enumerate(chunks)
    ]
    with multiprocessing.get_context("spawn").Pool() as pool:
        return np.concatenate(pool.starmap(traced_digit_model_inputs if traced else canvas_model_inputs, jobs))


def recognised(model, images, labels):
    """The images whose highest digit output is their label (a refusal is allowed: that is what is learnt)."""
    from mnist_web.calibration import NOT_A_DIGIT
    from mnist_web.recognizer import keras_forward

    if not len(images):  # a --digits-only run traces none
        return images
    forward = keras_forward(model)
    chunks = [np.asarray(forward(images[i : i + 1024, ..., None])) for i in range(0, len(images), 1024)]
    kept = np.concatenate(chunks)[:, :NOT_A_DIGIT].argmax(axis=1) == labels
    logging.info("%d of %d pen-traced digits still read as their digit: kept", kept.sum(), len(kept))
    return images[kept]


def render_negatives(count, seed, traced=False):
    """`count` non-digit drawings (font drawings, or pen-traced centre lines) preprocessed as the service would."""
    import multiprocessing

    from mnist_web.not_digits import training_model_inputs

    sizes = [len(c) for c in np.array_split(np.arange(count), CANVAS_CHUNKS)]
    jobs = [(size, seed * 1000 + number, traced) for number, size in enumerate(sizes)]
    with multiprocessing.get_context("spawn").Pool() as pool:
        return np.concatenate(pool.starmap(training_model_inputs, jobs))


def start_from(folders, classes):
    """The trained model of `folders` (merged into one if several); a 10-class one gains a fresh not-a-digit output."""
    import keras

    from mnist_web.ensemble import merge
    from mnist_web.recognizer import MODEL_JSON, MODEL_WEIGHTS

    trained = []
    for folder in folders:
        member = keras.models.model_from_json((Path(folder) / MODEL_JSON).read_text())
        member.load_weights(Path(folder) / MODEL_WEIGHTS)
        trained.append(member)
    model = merge(trained) if len(trained) > 1 else trained[0]
    logging.info("started from the weights of %s", ", ".join(map(str, folders)))
    output = model.layers[-1]
    if output.units == classes:
        return model
    if output.units > classes:
        raise SystemExit(f"{', '.join(map(str, folders))}: {output.units} outputs, more than the {classes} to train")

    def more_classes(layer):
        config = layer.get_config()
        if layer is output:
            config["units"] = classes
        return layer.__class__.from_config(config)

    grown = keras.models.clone_model(model, clone_function=more_classes)
    for new, old in zip(grown.layers, model.layers, strict=True):
        weights = old.get_weights()
        if old is output:  # keep the new class's fresh weights
            kernel, bias = new.get_weights()
            kernel[:, : output.units], bias[: output.units] = weights
            weights = [kernel, bias]
        new.set_weights(weights)
    return grown


def refit_refusal(model, digits, negatives):
    """Refit the output layer's not-a-digit row on the frozen penultimate features; the digits' rows stay as they are.

    P(not a digit) = sigmoid(z_not - logsumexp(z_digits)), so with the digit logits fixed this is a logistic
    regression on the 256 features: convex, fitted here by full-batch Adam in float32 in about a minute.
    """
    import keras

    from mnist_web.calibration import NOT_A_DIGIT

    # The output layer's input: the last Dropout, which passes the features through when predicting.
    features = keras.Model(model.inputs, model.layers[-2].output)
    h = features.predict(np.concatenate([digits, negatives])[..., None], batch_size=1024, verbose=0)
    h = h.astype(np.float32)
    is_negative = np.r_[np.zeros(len(digits)), np.ones(len(negatives))].astype(np.float32)
    kernel, bias = model.layers[-1].get_weights()
    digit_logits = h @ kernel[:, :NOT_A_DIGIT] + bias[:NOT_A_DIGIT]
    top = digit_logits.max(axis=1)
    digits_lse = top + np.log(np.exp(digit_logits - top[:, None]).sum(axis=1))
    weights = np.r_[kernel[:, NOT_A_DIGIT], bias[NOT_A_DIGIT]].astype(np.float32)
    first, second = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, REFIT_STEPS + 1):
        p_not = 1.0 / (1.0 + np.exp(digits_lse - (h @ weights[:-1] + weights[-1])))
        error = (p_not - is_negative) / len(h)
        gradient = np.r_[h.T @ error + REFIT_L2 * weights[:-1], error.sum()]
        first = 0.9 * first + 0.1 * gradient
        second = 0.999 * second + 0.001 * gradient**2
        weights -= REFIT_LEARNING_RATE * (first / (1 - 0.9**step)) / (np.sqrt(second / (1 - 0.999**step)) + 1e-8)
        if step % 200 == 0:
            loss = -np.mean(np.log(np.where(is_negative == 1, p_not, 1 - p_not) + 1e-12))
            logging.info("refit step %d: loss %.4f", step, loss)
    kernel[:, NOT_A_DIGIT], bias[NOT_A_DIGIT] = weights[:-1], weights[-1]
    model.layers[-1].set_weights([kernel, bias])


def save_plots(history, confusion, output):
    """Write confusion-matrix.png, and learning-curves.png when there was training (a history)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if history is not None:
        save_learning_curves(plt, history, output)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(np.log1p(confusion), cmap="Blues")
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(col, row, count, ha="center", va="center", fontsize=7, color="black" if row != col else "white")
    ax.set(xticks=range(confusion.shape[1]), yticks=range(10), xlabel="predicted (10: not a digit)", ylabel="true")
    ax.set_title("MNIST test confusion matrix")
    fig.tight_layout()
    fig.savefig(output / "confusion-matrix.png", dpi=100)


def save_learning_curves(plt, history, output):
    """Write learning-curves.png: loss and accuracy per epoch, training and validation."""
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    loss_ax.plot(epochs, history["loss"], label="training")
    loss_ax.plot(epochs, history["val_loss"], label="validation")
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.plot(epochs, history["accuracy"], label="training")
    acc_ax.plot(epochs, history["val_accuracy"], label="validation")
    acc_ax.set(title="accuracy", xlabel="epoch")
    for ax in (loss_ax, acc_ax):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(output / "learning-curves.png", dpi=100)


if __name__ == "__main__":
    main()

"""Command-line tools: `flask --app mnist_web predict FILE...` and `... evaluate`."""

import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from .errors import MnistWebError
from .preprocessing import preprocess
from .recognizer import get_recognizer


def _recognizer():
    return get_recognizer(current_app.config["MNIST_MODEL_DIR"], current_app.config["MNIST_INFERENCE"])


@click.command("predict")
@with_appcontext
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def predict_command(files):
    """Print the digit (or "not a digit") and confidence for each image file (PNG, JPEG, BMP)."""
    failed = False
    for path in files:
        try:
            prediction = _recognizer().predict(preprocess(path.read_bytes()))
        except (MnistWebError, OSError) as exc:
            click.echo(f"{path}: error: {getattr(exc, 'message', exc)}", err=True)
            failed = True
            continue
        answer = "not a digit" if prediction.digit is None else prediction.digit
        click.echo(f"{path}: {answer} ({prediction.confidence:.1%})")
    if failed:
        sys.exit(1)


@click.command("evaluate")
@with_appcontext
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--limit", type=int, default=None, help="Use only the first N test digits for the canvas set.")
@click.option(
    "--numbers",
    type=int,
    default=0,
    help="Also read N canvas numbers (also each digit alone), pen numbers, paper photos, photos on a desk and numbers"
    " holding a non-digit.",
)
@click.option("--not-digits", type=int, default=2000, show_default=True, help="Freehand non-digit drawings to refuse.")
@click.option(
    "--pen-digits",
    type=int,
    default=10,
    show_default=True,
    help="Drawings of each way of writing each digit with the page's pen, at each of its four sizes.",
)
def evaluate_command(data_dir, limit, numbers, not_digits, pen_digits):
    """Print accuracies (a refusal counts as wrong), refusal rates, calibration error, numbers and latency."""
    from .evaluation import (
        answered_no_number,
        calibration_errors,
        canvas_accuracy,
        canvas_number_accuracy,
        canvas_numbers_read_apart,
        desk_photo_number_accuracy,
        digit_refusals,
        mnist_test_accuracy,
        non_digit_number_refusals,
        not_digit_refusals,
        pen_digit_reads,
        pen_number_accuracy,
        photo_number_accuracy,
        single_image_latency,
    )

    recognizer = _recognizer()
    calibration = recognizer.calibration
    click.echo(
        f"model {recognizer.version} (temperature {calibration.temperature:.3f}, "
        f"refuses at P(not a digit) >= {calibration.refuse_at:.4f})"
    )
    mnist = mnist_test_accuracy(recognizer, data_dir)
    click.echo(f"MNIST test accuracy: {mnist:.2%} (10,000 images; a refusal counts as wrong)")
    canvas, unread = canvas_accuracy(recognizer, data_dir, limit)
    click.echo(f"canvas-set accuracy: {canvas:.2%} ({limit or 10000} drawings, {unread} without a digit found)")
    wrongly = digit_refusals(recognizer, data_dir, limit)
    click.echo(f"digits wrongly refused: MNIST test {wrongly['mnist']:.2%}, canvas set {wrongly['canvas']:.2%}")
    if pen_digits:
        reads = pen_digit_reads(recognizer, pen_digits)
        right, refused, drawn = (sum(column) for column in zip(*reads.values(), strict=True))
        tallest, shortest = max(high for _, high in reads), min(low for low, _ in reads)
        click.echo(
            f"digits drawn with the page's pen: {right / drawn:.2%} right, {refused / drawn:.2%} refused"
            f" ({drawn} drawings, {shortest}-{tallest} px tall)"
        )
    if not_digits:
        share, by_kind = not_digit_refusals(recognizer, not_digits)
        worst = ", ".join(f"{kind} {rate:.0%}" for kind, rate in sorted(by_kind.items(), key=lambda kv: kv[1])[:5])
        click.echo(f"non-digit drawings refused: {share:.2%} ({not_digits} freehand drawings; least refused: {worst})")
    for name, (before, after) in calibration_errors(recognizer, data_dir, limit).items():
        click.echo(f"calibration error (ECE) on the {name} set: {before:.2%} before, {after:.2%} after")
    measures = (
        ("canvas numbers", canvas_number_accuracy),
        ("numbers drawn with the page's pen", lambda recognizer, count, _: pen_number_accuracy(recognizer, count)),
        ("paper photos", photo_number_accuracy),
        ("paper photos on a desk", desk_photo_number_accuracy),
    )
    for name, measure in measures:
        if numbers:
            exact, per_digit, misses = measure(recognizer, numbers, data_dir)
            refused = sum(answered_no_number(read) for _, read in misses)
            click.echo(
                f"{name}: {exact:.2%} exact, {per_digit:.2%} per digit ({numbers} numbers; {refused} refused,"
                " counted wrong)"
            )
    if numbers:
        exact, per_digit = canvas_numbers_read_apart(recognizer, numbers, data_dir)
        click.echo(
            f"canvas numbers, each digit read alone from its own strokes: {exact:.2%} exact, {per_digit:.2%} per"
            f" digit ({numbers} numbers; the most a reader that never groups or cuts wrongly reaches with this model)"
        )
        share = non_digit_number_refusals(recognizer, numbers, data_dir)
        click.echo(f"numbers holding a drawing that is no digit: {share:.2%} refused ({numbers} numbers)")
    from .datasets import load_mnist

    _, (images, _) = load_mnist(data_dir)
    p50, p95 = single_image_latency(recognizer, images[0].astype("float32") / 255.0)
    click.echo(f"single-image latency: p50 {p50:.3f} ms, p95 {p95:.3f} ms")


def init_app(app):
    """Register the commands."""
    app.cli.add_command(predict_command)
    app.cli.add_command(evaluate_command)

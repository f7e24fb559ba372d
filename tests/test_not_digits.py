"""The non-digit drawings: both generators draw what the service can read, and neither draws a digit look-alike."""

import numpy as np

from mnist_web.not_digits import (
    FREEHAND_KINDS,
    SKELETONS,
    TRAINING_LETTERS,
    TRAINING_SYMBOLS,
    evaluation_drawings,
    training_model_inputs,
)
from mnist_web.preprocessing import image_format, preprocess

# Written like a digit: refusing them would mean refusing digits.
DIGIT_LOOK_ALIKES = set("0123456789OoDIlij!|/\\()[]Ss$Zzbgq")


def test_neither_generator_draws_a_digit_look_alike():
    assert not DIGIT_LOOK_ALIKES & set(TRAINING_LETTERS + TRAINING_SYMBOLS)
    assert not DIGIT_LOOK_ALIKES & {kind for kind in SKELETONS if len(kind) == 1}


def test_training_negatives_are_model_inputs_and_repeat_for_a_seed():
    first = training_model_inputs(40, seed=3)
    assert first.shape == (40, 28, 28) and first.dtype == np.float32
    assert (first.reshape(40, -1).max(axis=1) > 0.5).all()  # each holds ink, scaled like MNIST
    assert np.array_equal(first, training_model_inputs(40, seed=3))
    assert not np.array_equal(first, training_model_inputs(40, seed=4))


def test_traced_negatives_are_model_inputs_other_than_the_font_drawings():
    traced = training_model_inputs(40, seed=3, traced=True)
    assert traced.shape == (40, 28, 28) and (traced.reshape(40, -1).max(axis=1) > 0.5).all()
    assert np.array_equal(traced, training_model_inputs(40, seed=3, traced=True))
    assert not np.array_equal(traced, training_model_inputs(40, seed=3))


def test_evaluation_drawings_are_canvas_pngs_of_every_kind():
    drawings = list(evaluation_drawings(2 * len(FREEHAND_KINDS), seed=5))
    assert {kind for _, kind in drawings} == set(FREEHAND_KINDS)
    for png, _ in drawings:
        assert image_format(png) == "png"
        assert preprocess(png).max() > 0.5  # the page's own path finds the ink
    assert [png for png, _ in drawings] == [png for png, _ in evaluation_drawings(2 * len(FREEHAND_KINDS), seed=5)]

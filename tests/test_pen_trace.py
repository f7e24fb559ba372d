"""Pen-traced digits for training: a digit's centre line drawn with a round pen, as the traced non-digits are."""

import cv2
import numpy as np

from mnist_web.canvas import canvas_model_inputs
from mnist_web.pen_trace import digit_centre_line, thin, traced_digit_model_inputs


def test_a_digit_centre_line_is_one_pixel_thin_and_one_piece(mnist_test):
    images, labels = mnist_test
    for image in images[:20]:
        line = digit_centre_line(image)
        assert line.any()
        assert np.array_equal(thin(line), line)  # nothing left to thin
    zero = images[int(np.flatnonzero(labels == 0)[0])]
    pieces, _ = cv2.connectedComponents(digit_centre_line(zero).astype(np.uint8), connectivity=8)
    assert pieces - 1 == 1  # a 0's centre line is one closed stroke


def test_traced_digits_are_model_inputs_that_repeat_for_a_seed(mnist_test):
    images = mnist_test[0][:30]
    traced = traced_digit_model_inputs(images, seed=3)
    assert traced.shape == (30, 28, 28) and traced.dtype == np.float32
    assert (traced.reshape(30, -1).max(axis=1) > 0.5).all()
    assert np.array_equal(traced, traced_digit_model_inputs(images, seed=3))
    assert not np.array_equal(traced, traced_digit_model_inputs(images, seed=4))
    assert not np.array_equal(traced, canvas_model_inputs(images, seed=3))


def test_the_model_reads_traced_digits_and_seldom_refuses_them(recognizer, mnist_test):
    images, labels = mnist_test
    traced = traced_digit_model_inputs(images[-500:], seed=11)
    answers = recognizer.calibration.answers(recognizer.classify_batch(traced))
    assert (answers == labels[-500:]).mean() >= 0.97  # a skeleton can lose a filled loop: not every one is a digit
    assert (answers == -1).mean() <= 0.01

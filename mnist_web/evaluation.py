"""Accuracy on the MNIST test set and on the canvas-like set, and single-image latency."""

import time

import numpy as np

from .canvas import canvas_set
from .datasets import load_mnist
from .errors import MnistWebError
from .preprocessing import preprocess

CANVAS_SEED = 20261121


def mnist_test_accuracy(recognizer, data_dir=None):
    """Accuracy of the model on the 10,000 MNIST test images, as they are."""
    _, (images, labels) = load_mnist(data_dir)
    predicted = recognizer.predict_batch(images.astype(np.float32) / 255.0).argmax(axis=1)
    return float((predicted == labels).mean())


def canvas_accuracy(recognizer, data_dir=None, limit=None, seed=CANVAS_SEED):
    """Accuracy through the whole service path (PNG decode, preprocessing, model) on canvas drawings."""
    _, (images, labels) = load_mnist(data_dir)
    images, labels = images[:limit], labels[:limit]
    inputs = np.zeros((len(images), 28, 28), np.float32)
    accepted = np.ones(len(images), bool)
    for i, (png, _) in enumerate(canvas_set(images, labels, seed)):
        try:
            inputs[i] = preprocess(png)
        except MnistWebError:
            accepted[i] = False  # a refused drawing counts as a miss
    predicted = recognizer.predict_batch(inputs).argmax(axis=1)
    correct = int(((predicted == labels) & accepted).sum())
    return correct / len(labels), int((~accepted).sum())


def single_image_latency(recognizer, image, runs=1000):
    """Median and 95th percentile milliseconds of one recognizer.predict call, after warm-up."""
    for _ in range(50):
        recognizer.predict(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        recognizer.predict(image)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3), float(np.percentile(times, 95) * 1e3)

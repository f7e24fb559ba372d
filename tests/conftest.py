"""Shared fixtures: the flaskr-style app/client/runner, MNIST digits, and drawings of them."""

import numpy as np
import pytest

from mnist_web import create_app
from mnist_web.canvas import encode_png, render_drawing
from mnist_web.datasets import load_mnist
from mnist_web.recognizer import get_recognizer

# Session fixtures for the real Cassandra node, Redis and the 3-node cluster (tests/support/).
pytest_plugins = ["support.servers"]


@pytest.fixture
def app(tmp_path):
    """An app on a fresh SQLite file, with the committed model."""
    app = create_app({"TESTING": True, "MNIST_DATABASE_URL": f"sqlite:///{tmp_path}/records.sqlite3"})
    yield app
    app.extensions["mnist_web.store"].close()


@pytest.fixture
def client(app):
    """A test client for the app."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """A CLI runner for the app's click commands."""
    return app.test_cli_runner()


@pytest.fixture(scope="session")
def recognizer(app_config_model_dir):
    """The committed model, loaded once."""
    return get_recognizer(app_config_model_dir)


@pytest.fixture(scope="session")
def keras_recognizer(app_config_model_dir):
    """The committed model on TensorFlow, whatever MNIST_INFERENCE says: its `.model` is the Keras model."""
    return get_recognizer(app_config_model_dir, "tensorflow")


@pytest.fixture(scope="session")
def app_config_model_dir():
    """The model folder the app uses by default."""
    return create_app().config["MNIST_MODEL_DIR"]


@pytest.fixture(scope="session")
def mnist_test():
    """The MNIST test images and labels (uint8)."""
    return load_mnist()[1]


@pytest.fixture(scope="session")
def drawing(mnist_test):
    """drawing(index, background='white', seed=0) -> PNG bytes of that test digit drawn on a canvas."""
    images, labels = mnist_test

    def make(index, background="white", seed=0):
        return encode_png(render_drawing(images[index], np.random.default_rng(seed)), background)

    return make

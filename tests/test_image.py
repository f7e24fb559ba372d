"""The built image (`make image-test`): run it with the engine that built it and check what it delivers.

One container of IMAGE (mnist_web:latest), serving on a free loopback port, with the MNIST test set
mounted read-only: it gets ready, answers drawings with the right digit, runs as uid 10001 with its
code read-only, passes its own HEALTHCHECK, has no TensorFlow, gives the digits of the committed Keras
model here on the whole MNIST test set (its NumPy runtime; probabilities within 1e-5), and stops with
exit 0 on SIGTERM within the grace period. With a Docker engine, `docker compose` also brings up the
stack with Cassandra when a cassandra:5.0 image is there.

These tests are marked `image`: the normal suite leaves them out (pyproject's addopts), `make image-test`
builds the image and runs `pytest -m image`. Under CI=true a missing engine or image fails them.
"""

import contextlib
import io
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from mnist_web.datasets import default_data_dir
from support.harness import http, server_unavailable
from support.ports import free_port

pytestmark = pytest.mark.image

REPO = Path(__file__).resolve().parent.parent
IMAGE = os.environ.get("IMAGE", "mnist_web:latest")
APP_USER = "10001"
# gunicorn's graceful_timeout (30 s) plus docker-compose.yml's margin: its stop_grace_period.
GRACE_S = 40
CONTAINER_MNIST = "/mnist"


def engine_env():
    """(engine command, environment) as scripts/image.sh chose them (or as the caller set them)."""
    env = dict(os.environ)
    if not env.get("IMAGE_ENGINE"):
        result = subprocess.run(
            ["bash", str(REPO / "scripts/image.sh"), "env"], capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            server_unavailable(f"no container engine (scripts/image.sh env):\n{result.stderr[-2000:]}")
        env.update(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        env["IMAGE_ENGINE"] = env.pop("ENGINE")
    return env["IMAGE_ENGINE"], env


class Engine:
    """docker or podman, run with the environment scripts/image.sh set up for it."""

    def __init__(self):
        self.name, self.env = engine_env()

    def run(self, *args, timeout=120, check=True, stdin=None):
        """Run `ENGINE args...`; the CompletedProcess (stdout as bytes)."""
        result = subprocess.run(
            [self.name, *args], env=self.env, input=stdin, capture_output=True, timeout=timeout, check=False
        )
        if check:
            assert result.returncode == 0, f"{self.name} {' '.join(args)}: {result.stderr.decode(errors='replace')}"
        return result

    def text(self, *args, **kwargs):
        return self.run(*args, **kwargs).stdout.decode().strip()


@pytest.fixture(scope="module")
def engine():
    engine = Engine()
    if engine.run("image", "inspect", IMAGE, check=False).returncode != 0:
        server_unavailable(f"no image {IMAGE} for {engine.name}: run `make image` first")
    return engine


@pytest.fixture(scope="module")
def mnist_dir():
    data_dir = default_data_dir()
    if data_dir is None or not (data_dir / "t10k-images-idx3-ubyte.gz").exists():
        server_unavailable("no local MNIST data (set MNIST_DATA_DIR or provide ../shared/mnist)")
    return data_dir.resolve()


class Container:
    """A running container of the image, published on 127.0.0.1:port."""

    def __init__(self, engine, name, port):
        self.engine, self.name, self.port = engine, name, port
        self.base = f"http://127.0.0.1:{port}"

    def state(self):
        return json.loads(self.engine.text("inspect", "--format", "{{json .State}}", self.name))

    def logs(self, limit=4000):
        result = self.engine.run("logs", self.name, check=False)
        return (result.stdout + result.stderr).decode(errors="replace")[-limit:]

    def exec(self, *argv, timeout=120, check=True, stdin=None):
        args = ["exec", *(["-i"] if stdin is not None else []), self.name, *argv]
        return self.engine.run(*args, timeout=timeout, check=check, stdin=stdin)


@pytest.fixture(scope="module")
def container(engine, mnist_dir):
    """The image, started as `docker run` would run it; removed afterwards."""
    port = free_port()
    name = f"mnist_web_test_{uuid.uuid4().hex[:10]}"
    # The host's network, with gunicorn on a free loopback port: publishing a port needs the engine's
    # bridge network, which a sandbox may lack (podman's netavark without iptables, dockerd --bridge=none).
    engine.run(
        "run", "--detach", "--name", name, "--network", "host",
        "--env", "HOST=127.0.0.1", "--env", f"PORT={port}",
        "--volume", f"{mnist_dir}:{CONTAINER_MNIST}:ro",
        "--env", f"MNIST_DATA_DIR={CONTAINER_MNIST}",
        IMAGE,
    )  # fmt: skip
    box = Container(engine, name, port)
    try:
        deadline = time.monotonic() + 240
        last = None
        while time.monotonic() < deadline:
            if not box.state()["Running"]:
                pytest.fail(f"the container stopped before it was ready:\n{box.logs()}", pytrace=False)
            with contextlib.suppress(OSError):
                status, _, body = http("GET", f"{box.base}/readyz", timeout=10)
                last = (status, body[:300])
                if status == 200:
                    break
            time.sleep(1)
        else:
            pytest.fail(f"/readyz not 200 within 240 s (last: {last}):\n{box.logs()}", pytrace=False)
        yield box
    finally:
        engine.run("stop", "-t", "5", name, check=False, timeout=60)
        engine.run("rm", "--force", name, check=False, timeout=60)


def test_readyz_reports_the_model_and_the_store(container):
    status, _, body = http("GET", f"{container.base}/readyz")
    assert status == 200, body
    detail = json.loads(body)
    assert detail["model"]["ready"] and detail["model"]["version"].startswith("cnn-"), detail
    assert detail["store"] == {"backend": "sqlite", "ready": True}, detail


def test_drawings_get_their_digits(container, drawing, mnist_test):
    _, labels = mnist_test
    for index in range(5):
        status, _, body = http(
            "POST",
            f"{container.base}/api/v1/predictions",
            body=drawing(index, background=("white", "transparent")[index % 2], seed=index),
            headers={"Content-Type": "image/png"},
            timeout=60,
        )
        assert status == 201, body[:500]
        answer = json.loads(body)
        assert answer["digit"] == int(labels[index]), (index, answer)
        # The record is kept: it can be read back by its id.
        status, _, body = http("GET", f"{container.base}/api/v1/predictions/{answer['id']}")
        assert status == 200 and json.loads(body)["digit"] == answer["digit"], body[:500]
    status, _, body = http("POST", f"{container.base}/api/v1/predictions", body=b"not an image")
    assert 400 <= status < 500 and set(json.loads(body)) >= {"error", "message"}, body[:500]


def test_runs_as_uid_10001_with_read_only_code(engine, container):
    assert engine.text("image", "inspect", "--format", "{{.Config.User}}", IMAGE) == f"{APP_USER}:{APP_USER}"
    assert container.exec("id", "-u").stdout.decode().strip() == APP_USER
    # Every process in the container, gunicorn's master and workers included, runs as the app user.
    uids = container.exec("sh", "-c", "cat /proc/[0-9]*/status | awk '/^Uid:/ {print $2}'").stdout.decode().split()
    assert uids and set(uids) == {APP_USER}, uids
    probe = (
        "import os, pathlib\n"
        "code = [p for root in ('/app/mnist_web', '/app/model', '/app/templates', '/app/static', '/opt/venv')\n"
        "        for p in [pathlib.Path(root), *pathlib.Path(root).rglob('*')]]\n"
        "code += [pathlib.Path('/app'), pathlib.Path('/app/gunicorn.conf.py')]\n"
        "writable = [str(p) for p in code if os.access(p, os.W_OK)]\n"
        "try:\n"
        "    open('/app/mnist_web/__init__.py', 'a').close()\n"
        "    writable.append('opened /app/mnist_web/__init__.py for writing')\n"
        "except PermissionError:\n"
        "    pass\n"
        "print(len(code), writable, os.access('/app/instance', os.W_OK))\n"
    )
    checked, writable, instance = container.exec("python", "-c", probe).stdout.decode().strip().split(" ", 2)
    assert int(checked) > 100, checked
    assert writable == "[]", f"writable by uid {APP_USER}: {writable}"
    assert instance == "True", "/app/instance (SQLite, spool) must be writable"


def healthcheck_command(engine):
    """The image's HEALTHCHECK test, exec form: ['CMD', argv...]."""
    raw = engine.text("image", "inspect", "--format", "{{json .Config.Healthcheck}}", IMAGE)
    check = json.loads(raw) if raw not in ("", "null", "<no value>") else None
    assert check and check.get("Test"), f"the image has no HEALTHCHECK (podman: build with --format docker): {raw}"
    assert check["Test"][0] == "CMD", check
    return check["Test"][1:]


def test_healthcheck_passes_and_fails_when_it_should(engine, container):
    argv = healthcheck_command(engine)
    if engine.name == "podman":
        result = engine.run("healthcheck", "run", container.name, check=False, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert engine.text("inspect", "--format", "{{.State.Health.Status}}", container.name) == "healthy"
    result = container.exec(*argv, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # The same command against a port nothing listens on says unhealthy.
    result = container.exec("env", "PORT=1", *argv, check=False, timeout=60)
    assert result.returncode != 0, "the HEALTHCHECK command passed with no server behind it"


PROBABILITIES = """
import io, sys
import numpy as np
from mnist_web.datasets import load_mnist
from mnist_web.recognizer import Recognizer
(_, _), (images, _) = load_mnist()
recognizer = Recognizer("model")  # as the image configures it (MNIST_INFERENCE)
sys.stderr.write(recognizer.runtime)
out = io.BytesIO()
np.save(out, recognizer.predict_batch(images / 255.0))
sys.stdout.buffer.write(out.getvalue())
"""

# The image runs the folded model with ONNX Runtime, the host's Keras with TensorFlow: the sums are done in another
# order, so the probabilities agree to float32 rounding (measured: at most ~5e-7), not bit for bit.
PROBABILITY_TOLERANCE = 1e-5


def test_predictions_match_the_keras_model_here(container, keras_recognizer, mnist_test):
    """The image's ONNX runtime gives the host's Keras model's digits on all 10,000 MNIST test digits."""
    images, labels = mnist_test
    result = container.exec("python", "-c", PROBABILITIES, timeout=300)
    assert result.stderr.decode().strip().endswith("onnx"), result.stderr.decode()[-2000:]
    in_image = np.load(io.BytesIO(result.stdout))
    here = keras_recognizer.model.predict((images / 255.0).astype("float32")[..., None], batch_size=500, verbose=0)
    assert in_image.shape == here.shape == (10000, keras_recognizer.classes)
    assert np.array_equal(in_image.argmax(axis=1), here.argmax(axis=1))
    np.testing.assert_allclose(in_image, here, rtol=0, atol=PROBABILITY_TOLERANCE)
    calibration = keras_recognizer.calibration
    accuracy = (calibration.answers(calibration.apply(in_image)) == labels).mean()  # a refusal counts as wrong
    print(f"image: MNIST test accuracy {accuracy:.4f}, largest probability difference {abs(in_image - here).max():.1e}")
    assert accuracy >= 0.995, accuracy


def test_the_image_has_no_tensorflow(container):
    """Only what serving needs: TensorFlow and Keras are not installed in the image."""
    code = "import importlib.util as u; print([u.find_spec(m) for m in ('tensorflow', 'keras', 'pip')])"
    assert container.exec("python", "-c", code).stdout.decode().strip() == "[None, None, None]"


def test_sigterm_stops_it_cleanly_within_the_grace_period(engine, container):
    """Last: it ends the module's container. gunicorn finishes its requests and exits 0."""
    assert engine.text("inspect", "--format", "{{.Config.StopSignal}}", container.name) in ("SIGTERM", "15", "")
    start = time.monotonic()
    engine.run("kill", "--signal", "TERM", container.name)
    code = engine.text("wait", container.name, timeout=GRACE_S + 20)
    took = time.monotonic() - start
    logs = container.logs()
    assert code.splitlines()[-1] == "0", f"exit code {code}:\n{logs}"
    assert took < GRACE_S, f"took {took:.0f} s to stop"
    assert "Shutting down" in logs or "Handling signal: term" in logs, logs


# --------------------------------------------------------------------------------------------
# docker compose with Cassandra: only with a Docker engine and a cassandra:5.0 image
# --------------------------------------------------------------------------------------------


def compose_command(engine):
    if engine.name != "docker":
        return None
    if engine.run("compose", "version", check=False).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_compose_stack_records_a_prediction_in_cassandra(engine, drawing, mnist_test, tmp_path):
    compose = compose_command(engine)
    if compose is None:
        pytest.skip(f"SKIPPED: compose with Cassandra needs a Docker engine and docker compose; this is {engine.name}")
    if engine.run("image", "inspect", "cassandra:5.0", check=False).returncode != 0:
        if engine.run("pull", "cassandra:5.0", check=False, timeout=600).returncode != 0:
            pytest.skip("SKIPPED: compose with Cassandra: no cassandra:5.0 image could be had (no registry)")
    project = f"mnist_web_test_{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**engine.env, "MNIST_PORT": f"127.0.0.1:{port}", "COMPOSE_PROJECT_NAME": project}
    base = [*compose, "--file", str(REPO / "docker-compose.yml")]

    def run(*args, timeout=600):
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)

    try:
        up = run("up", "--detach", "--no-build", "cassandra", "web")
        assert up.returncode == 0, up.stdout + up.stderr
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if http("GET", f"http://127.0.0.1:{port}/readyz", timeout=10)[0] == 200:
                    break
            time.sleep(3)
        else:
            pytest.fail(f"the compose stack was not ready in 420 s:\n{run('logs', '--tail', '50').stdout}")
        _, labels = mnist_test
        status, _, body = http(
            "POST", f"http://127.0.0.1:{port}/api/v1/predictions", body=drawing(0),
            headers={"Content-Type": "image/png"}, timeout=60,
        )  # fmt: skip
        assert status == 201, body[:500]
        answer = json.loads(body)
        assert answer["digit"] == int(labels[0])
        query = f"SELECT result FROM mnist.record_data WHERE id = {answer['id']}"
        rows = ""
        for _ in range(30):  # a record the app spooled reaches Cassandra a little later
            rows = run("exec", "-T", "cassandra", "cqlsh", "-e", query, timeout=120).stdout
            if f" {answer['digit']}\n" in rows:
                break
            time.sleep(1)
        assert f" {answer['digit']}\n" in rows, rows
    finally:
        run("down", "--volumes", "--timeout", str(GRACE_S))

# mnist_web: Flask handwritten-digit service (a Keras-trained CNN, run with NumPy: no TensorFlow here), served by gunicorn.
#
#   docker build -t mnist_web .
#   docker run --rm -p 5000:5000 -e MNIST_DATABASE_URL=cassandra://HOST:9042/mnist mnist_web
#   docker compose up            (Cassandra + web; see docker-compose.yml)
#
# Two stages on the same pinned base image: "builder" makes the virtualenv from requirements-serve.txt,
# "runtime" gets only that virtualenv and the app's files, and runs as a non-root user.
# Every dependency in requirements-serve.txt ships manylinux wheels for CPython 3.11, so the builder
# needs no compiler. tests/test_delivery.py lints this file with hadolint and runs its
# ENTRYPOINT + CMD, with its ENV, against a real Cassandra; `make image` builds it with docker or
# podman (scripts/image.sh) and `make image-test` runs the image and checks it (tests/test_image.py).

# ---- builder: the virtualenv ------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# Only the serving requirements: no TensorFlow or Keras. The image runs the model with ONNX Runtime
# (mnist_web/onnx_forward.py, MNIST_INFERENCE=onnx below), which gives the Keras model's digits
# on the whole MNIST test set (tests/test_image.py checks it).
COPY requirements-serve.txt /tmp/requirements-serve.txt
# --no-compile: no .pyc in the image (see PYTHONPYCACHEPREFIX in the runtime stage).
RUN pip install --no-cache-dir --no-compile --prefer-binary -r /tmp/requirements-serve.txt

# Only what serving needs: no test suites, type stubs or pip/setuptools/wheel (nothing is
# installed at runtime).
RUN SITE=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && find "$SITE" -depth -type d -name tests -exec rm -rf {} + \
    && find "$SITE" -name '*.pyi' -type f -delete \
    && pip uninstall --yes setuptools wheel pip \
    && rm -f /opt/venv/bin/pip* /opt/venv/bin/wheel

# ---- runtime: venv + app only, non-root ---------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="mnist_web" \
      org.opencontainers.image.description="Handwritten-digit recognition web service (Flask + a Keras-trained CNN run with ONNX Runtime)"

# HOST/PORT are read by gunicorn.conf.py; MNIST_* by mnist_web/config.py. The model runs on ONNX
# Runtime (there is no TensorFlow in the image), one thread per worker; OPENBLAS_NUM_THREADS=1 for
# the NumPy work beside it: the workers are the parallelism (a small model gains nothing from more).
# The image has no .pyc (82 MB): PYTHONPYCACHEPREFIX lets the first worker compile into /tmp what
# the next workers (and recycled ones) reuse; the code itself stays read-only.
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=5000 \
    PYTHONUNBUFFERED=1 \
    PYTHONPYCACHEPREFIX=/tmp/pycache \
    MNIST_INFERENCE=onnx \
    OPENBLAS_NUM_THREADS=1

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
       --shell /usr/sbin/nologin app

WORKDIR /app

COPY --from=builder /opt/venv /opt/venv
# The code is owned by root (read-only for the app); only instance/ (SQLite, spool) is writable.
COPY gunicorn.conf.py ./
COPY mnist_web/ ./mnist_web/
COPY templates/ ./templates/
COPY static/ ./static/
COPY model/ ./model/
RUN mkdir -p /app/instance && chown app:app /app/instance

# Numeric, so that runtimes checking runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001

EXPOSE 5000

# No curl in slim images: the venv's python asks /healthz on the port gunicorn binds; an HTTP
# error or a refused connection raises, and the non-zero exit marks the container unhealthy.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5000'), timeout=4)"]

STOPSIGNAL SIGTERM

ENTRYPOINT ["/opt/venv/bin/gunicorn", "-c", "gunicorn.conf.py"]
CMD ["mnist_web:create_app()"]

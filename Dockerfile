# mnist_web: Flask + Keras handwritten-digit service, served by gunicorn.
#
#   docker build -t mnist_web .
#   docker run --rm -p 5000:5000 -e MNIST_DATABASE_URL=cassandra://HOST:9042/mnist mnist_web
#   docker compose up            (Cassandra + web; see docker-compose.yml)
#
# Two stages on the same pinned base image: "builder" makes the virtualenv from requirements.txt,
# "runtime" gets only that virtualenv and the app's files, and runs as a non-root user.
# Every dependency in requirements.txt ships manylinux wheels for CPython 3.11, so the builder
# needs no compiler. tests/test_delivery.py lints this file with hadolint and runs its
# ENTRYPOINT + CMD, with its ENV, against a real Cassandra; `make image` builds it with docker or
# podman (scripts/image.sh) and `make image-test` runs the image and checks it (tests/test_image.py).

# ---- builder: the virtualenv ------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

# binutils' strip, for TensorFlow's libraries (the builder only; the runtime gets no tools).
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils=2.40-2 \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
# --no-compile: no .pyc in the image (see PYTHONPYCACHEPREFIX in the runtime stage).
RUN pip install --no-cache-dir --no-compile --prefer-binary -r /tmp/requirements.txt

# Only what serving needs (as installed the venv is ~1.4 GB, most of it TensorFlow; this leaves ~0.8):
# - TensorFlow's C++ headers (for building custom ops) and the parts it never loads to serve:
#   libclang (its build tooling), StableHLO's and the tf2xla Python ops' libraries, grpcio;
#   pygments (rich's syntax colouring);
# - the libraries' symbol tables: strip --strip-unneeded keeps the dynamic symbols the loader
#   uses, so the code and the predictions are the same (tests/test_image.py checks them);
# - test suites, type stubs, pip/setuptools/wheel (nothing is installed at runtime).
RUN pip uninstall --yes libclang grpcio pygments \
    && SITE=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') \
    && rm -rf "$SITE/tensorflow/include" \
        "$SITE/tensorflow/compiler/mlir/stablehlo/stablehlo_extension.so" \
        "$SITE/tensorflow/compiler/tf2xla/ops/_xla_ops.so" \
    && find "$SITE/tensorflow" -name '*.so*' -type f -exec strip --strip-unneeded {} + \
    && find "$SITE" -depth -type d -name tests -exec rm -rf {} + \
    && find "$SITE" -name '*.pyi' -type f -delete \
    && pip uninstall --yes setuptools wheel pip \
    && rm -f /opt/venv/bin/pip* /opt/venv/bin/wheel

# ---- runtime: venv + app only, non-root ---------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="mnist_web" \
      org.opencontainers.image.description="Handwritten-digit recognition web service (Flask + Keras)"

# HOST/PORT are read by gunicorn.conf.py; MNIST_* by mnist_web/config.py.
# The image has no .pyc (82 MB): PYTHONPYCACHEPREFIX lets the first worker compile into /tmp what
# the next workers (and recycled ones) reuse; the code itself stays read-only.
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=5000 \
    PYTHONUNBUFFERED=1 \
    PYTHONPYCACHEPREFIX=/tmp/pycache \
    TF_CPP_MIN_LOG_LEVEL=2

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

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
# ENTRYPOINT + CMD, with its ENV, against a real Cassandra.

# ---- builder: the virtualenv ------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --prefer-binary -r /tmp/requirements.txt

# ---- runtime: venv + app only, non-root ---------------------------------------------------------
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="mnist_web" \
      org.opencontainers.image.description="Handwritten-digit recognition web service (Flask + Keras)"

# HOST/PORT are read by gunicorn.conf.py; MNIST_* by mnist_web/config.py.
ENV PATH=/opt/venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=5000 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
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

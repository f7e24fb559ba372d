"""mnist_web: handwritten-digit recognition service (Flask + Keras), records kept in Cassandra/SQLite/Redis."""

import logging
import os
import sys


def _one_blas_thread_per_process():
    """Default OPENBLAS_NUM_THREADS to 1 for the NumPy runtime, which OpenBLAS reads once, when NumPy loads.

    The model's matrices are small and gunicorn's workers are the parallelism: more BLAS threads per worker
    only fight over the cores (batched NumPy inference ran ~10x slower with 2 threads on 2 busy cores). It
    must run before anything imports NumPy, hence here; if NumPy came first, set the variable yourself.
    """
    if "numpy" not in sys.modules and os.environ.get("MNIST_INFERENCE", "auto") != "tensorflow":
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


_one_blas_thread_per_process()

from flask import Flask  # noqa: E402

from .config import REPO_ROOT, Config  # noqa: E402

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def create_app(test_config=None):
    """Build the Flask app; nothing heavy happens here (model and store load on first use)."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    app.config.from_object(Config)
    if test_config:
        app.config.update(test_config)
    _configure_logging(app.config["LOG_LEVEL"])
    if app.config.get("MNIST_PROXY_COUNT"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["MNIST_PROXY_COUNT"]))

    from . import api, cli, db, decode_budget, errors, framing, health, jsonbody, metrics, web

    jsonbody.init_app(app)
    errors.init_app(app)
    framing.init_app(app)
    decode_budget.init_app(app)
    db.init_app(app)
    metrics.init_app(app)
    cli.init_app(app)
    app.register_blueprint(web.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)

    @app.after_request
    def security_headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app


def _configure_logging(level):
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)

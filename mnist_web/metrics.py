"""Prometheus metrics: request counts and latency, predictions per digit, spool depth."""

import os
import struct
import time

from flask import Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

EXTENSION = "mnist_web.metrics"
# Label values come from fixed sets, so a client inventing methods or paths cannot add series.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def method_label(method):
    """The request method, or "other" for anything outside the standard set."""
    return method if method in KNOWN_METHODS else "other"


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mnist_http_requests", "HTTP requests", ["method", "endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "mnist_http_request_duration_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        # Label `digit`: "0".."9", or "not_a_digit" for a refusal.
        self.predictions = Counter("mnist_predictions", "Predictions made", ["digit"], registry=self.registry)
        self.inference = Histogram(
            "mnist_inference_seconds",
            "Preprocessing and model time per prediction",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=self.registry,
        )
        # Every worker sees the same spool file, so the largest live value is the depth.
        self.spool_depth = Gauge(
            "mnist_spool_depth",
            "Records waiting in the local spool",
            registry=self.registry,
            multiprocess_mode="livemax",
        )


def metrics():
    """The current app's metrics."""
    return current_app.extensions[EXTENSION]


def render():
    """The Prometheus text exposition of the current app's registry."""
    from .db import EXTENSION as STORE

    store = current_app.extensions[STORE].peek()
    metrics().spool_depth.set(getattr(store, "depth", 0) if store is not None else 0)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # under gunicorn: the sum over all workers
        return Response(_all_workers_exposition(), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(metrics().registry), mimetype=CONTENT_TYPE_LATEST)


def _all_workers_exposition(attempts=3):
    for attempt in range(attempts):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        try:
            return generate_latest(registry)
        except (FileNotFoundError, struct.error, RuntimeError):
            # A worker's file changed under the scrape: a dead worker's removed (gunicorn.conf.py child_exit)
            # or a new worker's still empty. List and read again.
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)
    return b""


def init_app(app):
    """Create the app's registry and time every request."""
    app.extensions[EXTENSION] = Metrics()

    @app.before_request
    def start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def record_request(response):
        # The route's pattern (a fixed set), never the path the client sent.
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        found = app.extensions[EXTENSION]
        found.requests.labels(method_label(request.method), endpoint, str(response.status_code)).inc()
        started = g.get("request_started")
        if started is not None:
            found.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

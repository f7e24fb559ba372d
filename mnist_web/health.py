"""Liveness, readiness, Prometheus metrics and the OpenAPI description."""

from flask import Blueprint, current_app, jsonify

from . import metrics as app_metrics
from .db import EXTENSION as STORE
from .errors import StoreUnavailable
from .openapi import openapi_document
from .predictions import recognizer

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """The process is alive (no dependency is checked)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    """Ready when the model is loaded (loading it now if needed) and the store answers."""
    detail = {"model": {"ready": False}, "store": {"backend": current_app.extensions[STORE].backend, "ready": False}}
    try:
        detail["model"] = {"ready": True, "version": recognizer().version}
    except Exception as exc:  # a missing or broken model file must show up here, not as a 500
        current_app.logger.exception("model not loaded")
        detail["model"]["error"] = str(exc)
    try:
        store = current_app.extensions[STORE].store()
        store.ping()
        detail["store"]["ready"] = True
    except StoreUnavailable as exc:
        detail["store"]["error"] = str(exc)
        store = current_app.extensions[STORE].peek()
    detail["spool_depth"] = getattr(store, "depth", 0)
    ready = detail["model"]["ready"] and detail["store"]["ready"]
    detail["status"] = "ready" if ready else "not_ready"
    return jsonify(detail), (200 if ready else 503)


@bp.get("/metrics")
def metrics():
    """Prometheus text format."""
    return app_metrics.render()


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 description of every endpoint."""
    return jsonify(openapi_document())

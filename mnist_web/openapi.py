"""The OpenAPI 3.1 description of the service, built from a few shared pieces."""

from .limits import DIGITS, HISTORY_LIMIT, IMAGE_TYPES, VERDICTS

ERROR = {"$ref": "#/components/schemas/Error"}
PREDICTION = {"$ref": "#/components/schemas/Prediction"}
PNG = IMAGE_TYPES["png"]
LIMIT = {"type": "integer", "minimum": 1, "maximum": HISTORY_LIMIT}
DIGIT = {"type": "integer", "minimum": DIGITS[0], "maximum": DIGITS[-1]}
ID_PARAM = {"name": "record_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses):
    return {str(s): _json(ERROR, "error") for s in statuses}


def openapi_document():
    """Return the OpenAPI document as a dict."""
    image_bytes = {"schema": {"type": "string", "format": "binary"}}
    created = {"201": _json(PREDICTION, "the prediction, recorded"), **_errors(400, 413, 415, 422, 503)}
    return {
        "openapi": "3.1.0",
        "info": {"title": "mnist_web", "version": "1.0.0", "description": "Handwritten digit recognition."},
        "paths": {
            "/predict/": {
                "post": {
                    "summary": "Classify a canvas drawing sent as a data URL",
                    "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "responses": created,
                }
            },
            "/api/v1/predictions": {
                "post": {
                    "summary": "Classify an image: multipart `file`, a raw image body, or JSON",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"file": {"type": "string", "format": "binary"}},
                                    "required": ["file"],
                                }
                            },
                            **dict.fromkeys(IMAGE_TYPES.values(), image_bytes),
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"image": {"type": "string", "description": "data URL or base64"}},
                                    "required": ["image"],
                                }
                            },
                        },
                    },
                    "responses": created,
                },
                "get": {
                    "summary": "Recent predictions, newest first",
                    "parameters": [
                        {"name": "limit", "in": "query", "schema": LIMIT},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "items": {"type": "array", "items": PREDICTION},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "a page of predictions",
                        ),
                        **_errors(400, 503),
                    },
                },
            },
            "/api/v1/predictions/{record_id}": {
                "get": {
                    "summary": "One prediction",
                    "parameters": [ID_PARAM],
                    "responses": {"200": _json(PREDICTION, "the prediction"), **_errors(404, 503)},
                }
            },
            "/api/v1/predictions/{record_id}/image": {
                "get": {
                    "summary": "The submitted image",
                    "parameters": [ID_PARAM],
                    "responses": {
                        "200": {"description": "the image bytes", "content": {"image/*": image_bytes}},
                        **_errors(404),
                    },
                }
            },
            "/api/v1/predictions/{record_id}/input": {
                "get": {
                    "summary": "The 28x28 image the model saw (PNG)",
                    "parameters": [ID_PARAM],
                    "responses": {"200": {"description": "PNG", "content": {PNG: image_bytes}}, **_errors(404)},
                }
            },
            "/api/v1/predictions/{record_id}/label": {
                "put": {
                    "summary": "Set the correct digit (a refused prediction may be labelled too)",
                    "parameters": [ID_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"label": DIGIT},
                                    "required": ["label"],
                                }
                            }
                        },
                    },
                    "responses": {"200": _json(PREDICTION, "the labelled prediction"), **_errors(400, 404, 503)},
                }
            },
            "/api/v1/stats": {
                "get": {
                    "summary": "Counts per digit and of refusals, and accuracy over labelled predictions",
                    "responses": {"200": _json({"$ref": "#/components/schemas/Stats"}, "statistics")},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "alive")}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness: model loaded and store reachable, with detail",
                    "responses": {
                        "200": _json({"type": "object"}, "ready"),
                        "503": _json({"type": "object"}, "not ready"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "text exposition format"}},
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": _json({"type": "object"}, "OpenAPI")}}
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["error", "message"],
                },
                "Prediction": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "format": "uuid"},
                        "digit": {**DIGIT, "type": ["integer", "null"], "description": "null when not a digit"},
                        "verdict": {
                            "type": "string",
                            "enum": list(VERDICTS),
                            "description": "not_a_digit: the drawing was refused (digit is null); it is still recorded",
                        },
                        "confidence": {
                            "type": "number",
                            "description": "probability of the answer: the digit's, or not_a_digit's when refused",
                        },
                        "probabilities": {
                            "type": "array",
                            "items": {"type": "number"},
                            "minItems": 10,
                            "maxItems": 10,
                            "description": "the ten digits' probabilities; with not_a_digit they sum to 1",
                        },
                        "not_a_digit": {
                            "type": ["number", "null"],
                            "description": "probability that the drawing is no digit (null: recorded before refusals)",
                        },
                        "created_at": {"type": "string", "format": "date-time"},
                        "model_version": {"type": "string"},
                        "source": {"type": "string", "enum": ["canvas", "upload", "api"]},
                        "label": {"type": ["integer", "null"]},
                        "latency_ms": {"type": "number"},
                        "image_type": {"type": "string", "enum": sorted(IMAGE_TYPES.values())},
                        "model_input": {"type": "string", "description": "data URL (only when just created)"},
                    },
                    "required": [
                        "id",
                        "digit",
                        "verdict",
                        "confidence",
                        "probabilities",
                        "created_at",
                        "model_version",
                    ],
                },
                "Stats": {
                    "type": "object",
                    "properties": {
                        "total": {"type": "integer"},
                        "per_digit": {"type": "object", "description": "predictions per digit"},
                        "not_a_digit": {"type": "integer", "description": "predictions answered not a digit"},
                        "labelled": {"type": "integer"},
                        "correct": {"type": "integer", "description": "a refusal labelled with a digit is wrong"},
                        "accuracy": {"type": ["number", "null"]},
                    },
                },
            }
        },
    }

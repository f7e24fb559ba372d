"""The OpenAPI 3.1 description of the service, built from a few shared pieces."""

from .limits import DIGITS, HISTORY_LIMIT, IMAGE_TYPES, MAX_NUMBER_DIGITS, MODES, VERDICTS

ERROR = {"$ref": "#/components/schemas/Error"}
PREDICTION = {"$ref": "#/components/schemas/Prediction"}
PNG = IMAGE_TYPES["png"]
LIMIT = {"type": "integer", "minimum": 1, "maximum": HISTORY_LIMIT}
DIGIT = {"type": "integer", "minimum": DIGITS[0], "maximum": DIGITS[-1]}
NUMBER = {"type": "string", "pattern": f"^[0-9]{{1,{MAX_NUMBER_DIGITS}}}$", "description": "digits, leading zeros kept"}
MODE = {"type": "string", "enum": list(MODES), "default": "digit"}
ID_PARAM = {"name": "record_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
MODE_PARAM = {
    "name": "mode",
    "in": "query",
    "schema": MODE,
    "description": "number: read a number of several digits; digit (the default): one digit",
}
FLOATS = {"type": "array", "items": {"type": "number"}}
COUNTS = {"type": "integer"}


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
                    "parameters": [MODE_PARAM],
                    "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "responses": created,
                }
            },
            "/api/v1/predictions": {
                "post": {
                    "summary": "Classify an image: multipart `file`, a raw image body, or JSON",
                    "description": "The mode may also be a form field or a JSON key `mode` (400 if two differ).",
                    "parameters": [MODE_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"file": {"type": "string", "format": "binary"}, "mode": MODE},
                                    "required": ["file"],
                                }
                            },
                            **dict.fromkeys(IMAGE_TYPES.values(), image_bytes),
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "image": {"type": "string", "description": "data URL or base64"},
                                        "mode": MODE,
                                    },
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
                    "summary": "The 28x28 image the model saw (PNG); a number's digits side by side (28 x 28n)",
                    "parameters": [ID_PARAM],
                    "responses": {"200": {"description": "PNG", "content": {PNG: image_bytes}}, **_errors(404)},
                }
            },
            "/api/v1/predictions/{record_id}/label": {
                "put": {
                    "summary": "Set the correct digit (digit mode) or number, as a digit string (number mode)",
                    "parameters": [ID_PARAM],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"label": {"oneOf": [DIGIT, NUMBER]}},
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
                        "digit": {
                            **DIGIT,
                            "type": ["integer", "null"],
                            "description": "null unless one digit is the answer",
                        },
                        "verdict": {"type": ["string", "null"], "enum": [*VERDICTS, None]},
                        "not_a_digit": {
                            "type": ["number", "null"],
                            "description": "probability it is no digit (a number: its most doubtful part's)",
                        },
                        "mode": {"type": ["string", "null"], "enum": [*MODES, None]},
                        "confidence": {
                            "type": "number",
                            "description": "of the digit; of a number, the product of its digits'",
                        },
                        "probabilities": {**FLOATS, "description": "the ten digits' (empty for numbers: see digits)"},
                        "number": {**NUMBER, "type": ["string", "null"]},
                        "digits": {"type": ["array", "null"], "items": {"$ref": "#/components/schemas/ReadDigit"}},
                        "number_label": {**NUMBER, "type": ["string", "null"]},
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
                "ReadDigit": {
                    "type": "object",
                    "properties": {
                        "digit": {**DIGIT, "type": ["integer", "null"], "description": "null: not a digit"},
                        "confidence": {"type": "number"},
                        "probabilities": {**FLOATS, "minItems": 10, "maxItems": 10},
                        "not_a_digit": {"type": "number"},
                        "box": {
                            **FLOATS,
                            "minItems": 4,
                            "maxItems": 4,
                            "description": "[x, y, w, h] in the image's pixels",
                        },
                        "model_input": {
                            "type": "string",
                            "description": "its 28x28 input, data URL (only when just created)",
                        },
                    },
                },
                "Stats": {
                    "type": "object",
                    "properties": {
                        "total": {"type": "integer"},
                        "per_digit": {"type": "object"},
                        "not_a_digit": COUNTS,
                        "several_digits": COUNTS,
                        "labelled": {"type": "integer"},
                        "correct": {"type": "integer", "description": "a refusal labelled with a digit is wrong"},
                        "accuracy": {"type": ["number", "null"]},
                        "numbers": {
                            "type": "object",
                            "properties": {
                                **dict.fromkeys(("total", "read", "refused", "labelled", "correct"), COUNTS),
                                "accuracy": {"type": ["number", "null"], "description": "whole numbers read right"},
                            },
                        },
                    },
                },
            }
        },
    }

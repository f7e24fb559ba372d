"""Domain exceptions; each carries the HTTP status and error code it maps to (in one place: here)."""


class MnistWebError(Exception):
    """Base of every error the service reports to a client as a 4xx JSON body."""

    status = 400
    code = "bad_request"

    def __init__(self, message=None):
        super().__init__(message or self.__doc__)
        self.message = message or self.__doc__


class InvalidImage(MnistWebError):
    """The data is not a decodable PNG, JPEG or BMP image."""

    status = 400
    code = "invalid_image"


class UnsupportedImageType(InvalidImage):
    """The image type is not supported: send PNG, JPEG or BMP."""

    status = 415
    code = "unsupported_image_type"


class ImageTooLarge(MnistWebError):
    """The image has too many pixels."""

    status = 413
    code = "image_too_large"


class NoDigitFound(MnistWebError):
    """No digit found: the image has no ink."""

    status = 422
    code = "no_digit_found"


class TooManyDigits(MnistWebError):
    """More digits than a number may have were found."""

    status = 422
    code = "too_many_digits"


class RecordNotFound(MnistWebError):
    """No prediction with that id."""

    status = 404
    code = "not_found"


class InvalidLabel(MnistWebError):
    """The label must be an integer from 0 to 9, or a number as a string of digits such as "042"."""

    status = 400
    code = "invalid_label"


class InvalidMode(MnistWebError):
    """The mode must be "digit" or "number"."""

    status = 400
    code = "invalid_mode"


class ServerBusy(MnistWebError):
    """The service is busy with other large images; try again shortly."""

    status = 503
    code = "busy"


class StoreUnavailable(Exception):
    """The record store cannot be reached right now (not a client error)."""


def init_app(app):
    """Answer every error as JSON {"error", "message"}: domain errors, HTTP errors, and the unexpected."""
    import logging

    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    log = logging.getLogger(__name__)

    def reply(code, message, status):
        response = jsonify(error=code, message=message)
        response.status_code = status
        return response

    @app.errorhandler(MnistWebError)
    def domain_error(exc):
        return reply(exc.code, exc.message, exc.status)

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(exc):
        log.error("store unavailable: %s", exc)
        return reply("store_unavailable", "the record store is unavailable; try again shortly", 503)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        code = (exc.name or "error").lower().replace(" ", "_")
        response = reply(code, exc.description or exc.name, exc.code or 500)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def unexpected(exc):
        log.exception("unhandled error")
        return reply("internal_error", "internal server error", 500)

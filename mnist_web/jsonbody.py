"""The app's JSON provider: a body too deeply nested to parse is malformed JSON (a 400), not a crash."""

from flask.json.provider import DefaultJSONProvider


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, except that nesting past the parser's recursion limit is a ValueError.

    Every `request.get_json()` goes through `loads`, so each JSON entry point answers a body like
    `[[[[...]]]]` as it answers any other malformed body instead of letting RecursionError reach the
    500 handler.
    """

    def loads(self, s, **kwargs):
        """Parse JSON; RecursionError becomes ValueError, which get_json() treats as malformed input."""
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


def init_app(app):
    """Install the provider on the app."""
    app.json = BoundedJSONProvider(app)

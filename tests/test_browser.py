"""End-to-end tests of the page at / in a real Chromium: drawing (mouse, touch, pen), upload, labels, history.

The module starts the real app under gunicorn on a free 127.0.0.1 port with a throwaway SQLite database,
and drives one Chromium (Playwright, sync API) for every test. Playwright's own browser download is not
needed: the first of $MNIST_CHROMIUM, /usr/bin/chromium, /usr/bin/chromium-browser, `chromium` on PATH
and Playwright's bundled build that launches is used. Without a browser the tests skip, or fail when
CI=true.

MNIST_WEB_URL=http://127.0.0.1:8000/ runs them against a server that is already up instead.
Every test fails if the page logs a console error or throws (CSP violations included).
"""

import base64
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from support.harness import gunicorn_argv, running, server_unavailable, wait_http
from support.ports import free_port

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "screenshot.png"
SIDE = 280  # the canvas, in CSS pixels
NUMBER_SIZE = (840, 280)  # the canvas in Number mode (numbers.NUMBER_CANVAS)
SERVER_START_TIMEOUT = 120.0  # seconds; importing TensorFlow and loading the model is slow on small machines
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# ---- server ------------------------------------------------------------------------------------


def _get(url, timeout=5.0):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(root URL, database URL or None): a gunicorn subprocess serving the real app with a throwaway database."""
    external = os.environ.get("MNIST_WEB_URL")
    if external:
        yield external.rstrip("/"), os.environ.get("MNIST_WEB_DATABASE_URL")
        return

    tmp = tmp_path_factory.mktemp("browser_server")
    port = free_port()
    env = dict(os.environ)
    env.update(
        MNIST_DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        MNIST_SPOOL_PATH=str(tmp / "spool.sqlite3"),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        PYTHONUNBUFFERED="1",
    )
    log_path = tmp / "server.log"
    url = f"http://127.0.0.1:{port}"
    # Command-line settings win over the config file: loopback only, and one worker (one model in memory).
    argv = gunicorn_argv("--bind", f"127.0.0.1:{port}", "--workers", "1")
    with running(argv, env, log_path, stop_timeout=15) as process:
        wait_http(url + "/healthz", process, log_path, SERVER_START_TIMEOUT, "liveness")
        _wait_until_ready(url, process, log_path)
        yield url, env["MNIST_DATABASE_URL"]


@pytest.fixture(scope="module")
def base_url(server):
    """The app's root URL."""
    return server[0]


@pytest.fixture
def server_store(server, tmp_path):
    """The server's own record store, opened by the test (to add records the model would not make now)."""
    from mnist_web.store import open_store

    if server[1] is None:
        server_unavailable("MNIST_WEB_URL is set without MNIST_WEB_DATABASE_URL: the server's store is unknown")
    store = open_store(server[1], str(tmp_path), timeout=10.0)
    yield store
    store.close()


def _wait_until_ready(url, server, log_path):
    """GET /readyz loads the model (lazily loaded otherwise), so the first prediction is not slow."""
    try:
        status, body = _get(url + "/readyz", timeout=SERVER_START_TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return  # no readiness endpoint: the first request loads the model
        pytest.fail(
            f"/readyz answered {exc.code}: {exc.read().decode(errors='replace')}\n"
            + log_path.read_text(errors="replace")[-4000:]
        )
    except (urllib.error.URLError, OSError) as exc:
        pytest.fail(
            f"/readyz failed ({exc}); server exit code {server.poll()}:\n"
            + log_path.read_text(errors="replace")[-4000:]
        )
    assert status == 200, body


def api_json(base_url, path):
    status, body = _get(base_url + path)
    assert status == 200, (path, status)
    return json.loads(body)


# ---- browser -----------------------------------------------------------------------------------


def _chromium_candidates():
    seen = []
    for candidate in (
        os.environ.get("MNIST_CHROMIUM"),
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.exists(candidate) and candidate not in seen:
            seen.append(candidate)
    return seen + [None]  # None: Playwright's own download, if it was installed


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        server_unavailable(f"playwright is not installed: {exc}")

    playwright = sync_playwright().start()
    launched, failures = None, []
    for executable in _chromium_candidates():
        try:
            launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000)
            break
        except PlaywrightError as exc:
            failures.append(f"{executable or 'playwright bundled chromium'}: {str(exc).splitlines()[0]}")
    if launched is None:
        playwright.stop()
        server_unavailable("Chromium cannot be launched:\n" + "\n".join(failures))
    try:
        yield launched
    finally:
        launched.close()
        playwright.stop()


class PageErrors:
    """Console errors and uncaught exceptions of one test's pages; a test may allow expected ones."""

    def __init__(self):
        self.errors = []
        self.allowed = []

    def watch(self, page):
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught exception: {exc}"))

    def _on_console(self, message):
        if message.type == "error":
            location = message.location or {}
            self.errors.append(f"console error: {message.text} ({location.get('url', '')})")

    def allow(self, pattern):
        self.allowed.append(re.compile(pattern))

    def unexpected(self):
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def page_errors():
    errors = PageErrors()
    yield errors
    unexpected = errors.unexpected()
    assert not unexpected, "the page logged errors:\n" + "\n".join(unexpected)


@pytest.fixture
def open_page(browser, base_url, page_errors):
    """open_page(**context_options) -> a fresh page at / (ready), in its own context; closed afterwards."""
    contexts = []

    def _open(**options):
        options.setdefault("viewport", {"width": 1200, "height": 900})
        options.setdefault("device_scale_factor", 2)  # exercise the high-DPI backing store
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page_errors.watch(page)
        # The page loads the history and the stats at once; wait for both so later waits see only new ones.
        with page.expect_response(lambda r: "/api/v1/stats" in r.url):
            with page.expect_response(lambda r: "/api/v1/predictions?" in r.url):
                page.goto(base_url + "/")
        page.wait_for_selector("#app[data-ready='true']")
        return page

    yield _open
    for context in contexts:
        context.close()


@pytest.fixture
def page(open_page):
    return open_page()


# ---- drawing -----------------------------------------------------------------------------------

# Strokes in canvas CSS pixels (0..280), one list of points per stroke.
ONE = [[(142, 45), (138, 235)]]
SEVEN = [[(75, 60), (205, 60), (120, 235)]]
CROSS = [[(60, 60), (220, 220)], [(220, 60), (60, 220)]]  # an X: no digit
ZERO = [[(140 + 62 * np.sin(t), 140 - 88 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 48)]]


def _densify(points, step=6.0):
    """Points every `step` px along a polyline, so every move is a short segment like a real hand's."""
    out = [points[0]]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        n = max(1, int(np.hypot(x1 - x0, y1 - y0) / step))
        out += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1)]
    return out


def canvas_origin(page, size=(SIDE, SIDE)):
    box = page.locator("#canvas").bounding_box()
    assert round(box["width"]) == size[0] and round(box["height"]) == size[1], box
    return box["x"], box["y"]


def draw_with_mouse(page, strokes, size=(SIDE, SIDE)):
    x, y = canvas_origin(page, size)
    for stroke in strokes:
        points = _densify(stroke)
        page.mouse.move(x + points[0][0], y + points[0][1])
        page.mouse.down()
        for px, py in points[1:]:
            page.mouse.move(x + px, y + py)
        page.mouse.up()


def draw_with_touch(page, strokes):
    """Real touch input through the browser's input pipeline (CDP), as a finger would make it."""
    cdp = page.context.new_cdp_session(page)
    x, y = canvas_origin(page)
    for stroke in strokes:
        points = _densify(stroke)
        for i, (px, py) in enumerate(points):
            kind = "touchStart" if i == 0 else "touchMove"
            cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x + px, "y": y + py, "id": 1}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def draw_with_pen(page, strokes):
    """Pen input: mouse events that CDP marks as coming from a pen."""
    cdp = page.context.new_cdp_session(page)
    x, y = canvas_origin(page)
    for stroke in strokes:
        points = _densify(stroke)
        common = {"pointerType": "pen", "button": "left", "clickCount": 1, "force": 0.5}
        cdp.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseMoved", "x": x + points[0][0], "y": y + points[0][1], "pointerType": "pen"},
        )
        cdp.send(
            "Input.dispatchMouseEvent", {"type": "mousePressed", "x": x + points[0][0], "y": y + points[0][1], **common}
        )
        for px, py in points[1:]:
            cdp.send(
                "Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x + px, "y": y + py, "buttons": 1, **common}
            )
        cdp.send(
            "Input.dispatchMouseEvent",
            {"type": "mouseReleased", "x": x + points[-1][0], "y": y + points[-1][1], **common},
        )
    cdp.detach()


def record_pointer_types(page):
    """Remember the pointerType of every pointerdown on the canvas (read with pointer_types())."""
    page.locator("#canvas").evaluate(
        "canvas => { window.__pointerTypes = [];"
        " canvas.addEventListener('pointerdown', e => window.__pointerTypes.push(e.pointerType)); }"
    )


def pointer_types(page):
    return page.evaluate("() => window.__pointerTypes")


def ink_pixels(page):
    """How many backing-store pixels of the canvas are not white."""
    return page.evaluate(
        """() => {
            const c = document.getElementById('canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) if (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250) n++;
            return n;
        }"""
    )


def _path(response):
    return urllib.parse.urlsplit(response.url).path.rstrip("/")


def is_predict(response):
    return response.request.method == "POST" and _path(response).endswith("/predict")


def is_upload(response):
    return response.request.method == "POST" and _path(response).endswith("/api/v1/predictions")


def predict(page, trigger="click"):
    """Ask for a prediction (button or Enter) and return the JSON of the response."""
    with page.expect_response(is_predict) as response_info:
        if trigger == "click":
            page.click("#predict")
        else:
            page.keyboard.press("Enter")
    response = response_info.value
    body = response.json()
    assert response.status == 201, body
    return body


def expect_result(page, record, digit):
    """The result area shows `record`, and the model said `digit`."""
    from playwright.sync_api import expect

    assert record["digit"] == digit, f"the model said {record['digit']} (p={record['probabilities']}), not {digit}"
    expect(page.locator("#result-digit")).to_have_text(str(digit))
    expect(page.locator("#result-digit")).to_have_attribute("data-id", str(record["id"]))
    expect(page.locator("#result-confidence")).to_contain_text(f"{record['confidence'] * 100:.1f}%")
    bars = page.locator("#bars > [data-digit]")
    expect(bars).to_have_count(10)
    expect(page.locator("#bars > .is-winner")).to_have_attribute("data-digit", str(digit))
    assert record["model_input"].startswith("data:image/png;base64,")
    model_input = page.locator("#model-input")
    expect(model_input).to_be_visible()
    expect(model_input).to_have_attribute("src", record["model_input"])
    size = model_input.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])")
    assert size == [28, 28]
    expect(page.locator("#feedback")).to_be_visible()


def expect_refusal(page, record):
    """The result area shows `record` as "not a digit": no digit, greyed bars, the correction buttons."""
    from playwright.sync_api import expect

    assert record["verdict"] == "not_a_digit" and record["digit"] is None, record
    expect(page.locator("#result-digit")).to_have_attribute("data-id", str(record["id"]))
    expect(page.locator("#result-digit")).to_have_attribute("data-verdict", "not_a_digit")
    expect(page.locator("#result-confidence")).to_contain_text("That doesn't look like a digit")
    expect(page.locator("#result-confidence")).to_contain_text(f"{record['confidence'] * 100:.1f}%")
    expect(page.locator("#result")).to_have_class(re.compile(r"\bis-refused\b"))
    expect(page.locator("#bars > .is-winner")).to_have_count(0)
    expect(page.locator("#feedback")).to_be_visible()
    expect(page.locator("#confirm")).to_be_hidden()  # a label is a digit: "not a digit" is not one
    expect(page.locator("#label-buttons [data-label]")).to_have_count(10)
    for button in page.locator("#label-buttons [data-label]").all():
        expect(button).to_be_visible()


def expect_refusal_labelled(page, base_url, record, label):
    """A correction button labels the refused record: saved, shown, and counted as wrong."""
    from playwright.sync_api import expect

    before = api_json(base_url, "/api/v1/stats")
    saved = _label(page, f"#label-buttons [data-label='{label}']")
    assert (saved["id"], saved["label"], saved["digit"], saved["verdict"]) == (record["id"], label, None, "not_a_digit")
    expect(page.locator("#feedback-status")).to_contain_text(f"right digit is {label}")
    expect(page.locator(f"#history [data-id='{record['id']}']")).to_contain_text(f"was {label}")
    labelled = before["labelled"] + (record.get("label") is None)
    _expect_accuracy(page, base_url, labelled, before["correct"])


# ---- tests -------------------------------------------------------------------------------------


def test_page_is_self_contained(page, base_url):
    """No inline script or style attribute (CSP), every asset from this server, the canvas high-DPI."""
    # The page is tested under the strict policy the server sends, so a violation would be a console error.
    policy = page.request.get(base_url + "/").headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy, policy
    assert page.locator("[style]").count() == 0
    assert page.locator("script:not([src])").count() == 0
    for src in page.locator("script[src], link[href]").evaluate_all("els => els.map(e => e.src || e.href)"):
        assert src.startswith(base_url + "/"), src
    assert page.locator("#canvas").evaluate("c => [c.width, c.height]") == [2 * SIDE, 2 * SIDE]
    assert page.locator("#canvas").evaluate("c => getComputedStyle(c).touchAction") == "none"
    assert page.locator("#bars > [data-digit]").count() == 10
    assert page.locator("#label-buttons [data-label]").count() == 10


def test_draw_one_with_mouse(page):
    record_pointer_types(page)
    draw_with_mouse(page, ONE)
    assert ink_pixels(page) > 1000
    record = predict(page)
    expect_result(page, record, 1)
    assert record["source"] == "canvas"
    assert pointer_types(page) == ["mouse"]


def test_draw_seven_with_mouse_and_enter(page):
    draw_with_mouse(page, SEVEN)
    record = predict(page, trigger="enter")
    expect_result(page, record, 7)


def test_draw_zero_with_touch(open_page):
    page = open_page(has_touch=True, is_mobile=False)
    record_pointer_types(page)
    scroll_before = page.evaluate("() => [scrollX, scrollY]")
    draw_with_touch(page, ZERO)
    assert pointer_types(page) == ["touch"]
    assert page.evaluate("() => [scrollX, scrollY]") == scroll_before
    record = predict(page)
    expect_result(page, record, 0)


def test_draw_seven_with_pen(page):
    record_pointer_types(page)
    draw_with_pen(page, SEVEN)
    assert pointer_types(page) == ["pen"]
    record = predict(page)
    expect_result(page, record, 7)


def test_predict_as_i_draw(page):
    from playwright.sync_api import expect

    page.check("#live")
    with page.expect_response(is_predict) as response_info:
        draw_with_mouse(page, ONE)  # no button, no key: the end of the stroke predicts
    record = response_info.value.json()
    expect_result(page, record, 1)
    # Remembered for the next visit.
    page.reload()
    page.wait_for_selector("#app[data-ready='true']")
    expect(page.locator("#live")).to_be_checked()
    page.uncheck("#live")


def test_clear_empties_the_canvas(page, page_errors):
    from playwright.sync_api import expect

    page_errors.allow(r"Failed to load resource: the server responded with a status of 422 .*/predict/")
    draw_with_mouse(page, SEVEN)
    assert ink_pixels(page) > 1000
    page.click("#clear")
    assert ink_pixels(page) == 0

    with page.expect_response(is_predict) as response_info:
        page.click("#predict")
    response = response_info.value
    assert response.status == 422
    assert response.json()["error"] == "no_digit_found"
    message = page.locator("#message")
    expect(message).to_be_visible()
    expect(message).to_contain_text(re.compile("no digit", re.I))

    # Escape clears too, and clearing hides the old error.
    draw_with_mouse(page, ONE)
    page.keyboard.press("Escape")
    assert ink_pixels(page) == 0
    expect(message).to_be_hidden()


@pytest.fixture(scope="module")
def mnist_upload(tmp_path_factory, mnist_test):
    """(path, label): one MNIST test digit drawn as a browser would (280x280 PNG on white), mid-sized."""
    from mnist_web.canvas import encode_png, render_drawing

    images, labels = mnist_test
    index = 1  # a "2"
    rng = np.random.default_rng(20240601)
    for _ in range(100):  # deterministic: the first rendering of a comfortable size
        ink = render_drawing(images[index], rng)
        rows = np.flatnonzero((ink > 0.5).any(axis=1))
        if 120 <= rows[-1] - rows[0] <= 240:
            break
    path = tmp_path_factory.mktemp("upload") / f"mnist-test-{index}.png"
    path.write_bytes(encode_png(ink, "white"))
    return path, int(labels[index])


def test_upload_with_file_picker(page, mnist_upload):
    path, label = mnist_upload
    with page.expect_response(is_upload) as response_info:
        page.set_input_files("#file", str(path))
    response = response_info.value
    record = response.json()
    assert response.status == 201, record
    expect_result(page, record, label)
    assert record["source"] == "upload"


def test_upload_by_drag_and_drop(page, mnist_upload):
    path, label = mnist_upload
    payload = base64.b64encode(path.read_bytes()).decode("ascii")
    with page.expect_response(is_upload) as response_info:
        page.locator("#drop-zone").evaluate(
            """(zone, [payload, name]) => {
                const bytes = Uint8Array.from(atob(payload), c => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], name, { type: 'image/png' }));
                for (const type of ['dragenter', 'dragover', 'drop']) {
                    const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
                    zone.dispatchEvent(new DragEvent(type, init));
                }
            }""",
            [payload, path.name],
        )
    record = response_info.value.json()
    expect_result(page, record, label)
    assert not page.locator("#drop-zone").evaluate("z => z.classList.contains('is-dragover')")


def _label(page, selector):
    """Click a feedback button; return the JSON of the PUT .../label it sends."""
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith("/label")) as put_info:
        page.click(selector)
    put = put_info.value
    assert put.status == 200, put.text()
    return put.json()


def _expect_accuracy(page, base_url, labelled, correct):
    """#accuracy shows these counts (it refreshes after the label is saved) and agrees with /api/v1/stats."""
    from playwright.sync_api import expect

    accuracy = page.locator("#accuracy")
    expect(accuracy).to_contain_text(f"{labelled} labelled ({correct} correct)")
    stats = api_json(base_url, "/api/v1/stats")
    assert (stats["labelled"], stats["correct"]) == (labelled, correct)
    assert stats["accuracy"] == pytest.approx(correct / labelled)
    assert float(accuracy.get_attribute("data-accuracy")) == pytest.approx(stats["accuracy"])
    expect(accuracy).to_contain_text(f"{100 * correct / labelled:.1f}%")


def test_label_correction_updates_record_and_accuracy(page, base_url):
    from playwright.sync_api import expect

    draw_with_mouse(page, SEVEN)
    record = predict(page)
    expect_result(page, record, 7)
    before = api_json(base_url, "/api/v1/stats")
    item = page.locator(f"#history [data-id='{record['id']}']")

    # "It was a 1": a correction.
    saved = _label(page, "#label-buttons [data-label='1']")
    assert saved["id"] == record["id"] and saved["label"] == 1
    expect(page.locator("#label-buttons [data-label='1']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#feedback-status")).to_contain_text("right digit is 1")
    assert api_json(base_url, f"/api/v1/predictions/{record['id']}")["label"] == 1
    _expect_accuracy(page, base_url, before["labelled"] + 1, before["correct"])
    expect(item).to_contain_text("was 1")

    # Changed mind: it was right after all.
    saved = _label(page, "#confirm")
    assert saved["label"] == 7
    expect(page.locator("#confirm")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#label-buttons [aria-pressed='true']")).to_have_count(0)
    expect(page.locator("#feedback-status")).to_contain_text("correct")
    assert api_json(base_url, f"/api/v1/predictions/{record['id']}")["label"] == 7
    _expect_accuracy(page, base_url, before["labelled"] + 1, before["correct"] + 1)
    expect(item).to_contain_text("correct")


def test_an_x_is_not_a_digit(page, base_url):
    """Needs a model that refuses (11 classes): an X drawn with the mouse is answered "not a digit"."""
    from playwright.sync_api import expect

    draw_with_mouse(page, CROSS)
    record = predict(page)
    expect_refusal(page, record)
    stored = api_json(base_url, f"/api/v1/predictions/{record['id']}")
    assert (stored["digit"], stored["verdict"], stored["label"]) == (None, "not_a_digit", None)
    item = page.locator(f"#history [data-id='{record['id']}']")
    expect(item).to_have_attribute("data-verdict", "not_a_digit")
    expect(item).to_contain_text("not a digit")
    expect(page.locator("#accuracy")).to_contain_text("not a digit")
    expect_refusal_labelled(page, base_url, record, 4)


def test_a_refusal_in_the_history_is_shown_and_labelled(page, base_url, server_store):
    """A refused record (added to the server's store) in the history list, brought back and labelled."""
    from playwright.sync_api import expect
    from test_store_contract import make_refusal

    refused = make_refusal()
    server_store.add(refused)
    with page.expect_response(lambda r: "/api/v1/stats" in r.url):
        with page.expect_response(lambda r: "/api/v1/predictions?" in r.url):
            page.reload()
    item = page.locator(f"#history [data-id='{refused.id}']")
    expect(item).to_have_attribute("data-verdict", "not_a_digit")
    expect(item.locator(".history-label")).to_have_text("✗ not a digit")
    assert int(page.locator("#accuracy").get_attribute("data-refused")) >= 1
    expect(page.locator("#accuracy")).to_contain_text("not a digit")
    item.locator("button").click()
    record = api_json(base_url, f"/api/v1/predictions/{refused.id}")
    expect_refusal(page, record)
    expect_refusal_labelled(page, base_url, record, 3)


def test_history_gains_the_new_prediction(page):
    from playwright.sync_api import expect

    history = page.locator("#history > [data-id]")
    with page.expect_response(lambda r: "/api/v1/predictions?" in r.url and r.request.method == "GET") as listing:
        draw_with_mouse(page, ONE)
        record = predict(page)
    assert listing.value.json()["items"][0]["id"] == record["id"]
    expect(history.first).to_have_attribute("data-id", str(record["id"]))
    assert history.count() <= 12
    first = history.first
    expect(first).to_contain_text(str(record["digit"]))
    thumbnail = first.locator("img")
    assert thumbnail.get_attribute("src").endswith(f"/api/v1/predictions/{record['id']}/input")
    assert thumbnail.evaluate("img => img.decode().then(() => [img.naturalWidth, img.naturalHeight])") == [28, 28]

    # A history item can be brought back into the result area (and labelled there).
    if history.count() > 1:
        older = history.nth(1)
        older_id = older.get_attribute("data-id")
        older.locator("button").click()
        expect(page.locator("#result-digit")).to_have_attribute("data-id", older_id)


def test_screenshot(open_page, tmp_path):
    """The page after a prediction, 1200 CSS pixels wide; UPDATE_SCREENSHOT=1 writes docs/screenshot.png."""
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "screenshot.png"
    page = open_page(device_scale_factor=1, viewport={"width": 1200, "height": 800})
    draw_with_mouse(page, SEVEN)
    record = predict(page)
    expect_result(page, record, 7)
    page.locator(f"#history [data-id='{record['id']}'] img").evaluate("img => img.decode()")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(300)  # let the bar transition finish
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target), full_page=True, animations="disabled")
    assert target.stat().st_size > 10_000


def shifted(strokes, dx, scale=1.0, dy=0.0):
    """Strokes moved right by dx (and scaled about the canvas's top left first)."""
    return [[(x * scale + dx, y * scale + dy) for x, y in stroke] for stroke in strokes]


def test_number_mode_reads_a_number_drawn_with_the_mouse(page, base_url):
    from playwright.sync_api import expect

    page.click("#mode-switch [data-mode='number']")
    expect(page.locator("#app")).to_have_attribute("data-mode", "number")
    assert page.locator("#canvas").evaluate("c => [c.width, c.height]") == [2 * NUMBER_SIZE[0], 2 * NUMBER_SIZE[1]]
    draw_with_mouse(page, ONE + shifted(SEVEN, 220) + shifted(ZERO, 460), NUMBER_SIZE)
    with page.expect_response(is_predict) as response_info:
        page.click("#predict")
    response = response_info.value
    assert urllib.parse.urlsplit(response.url).query == "mode=number"
    record = response.json()
    assert response.status == 201 and record["mode"] == "number", record
    assert record["number"] == "170", record
    expect(page.locator("#result-digit")).to_have_text("170")
    expect(page.locator("#result-confidence")).to_have_text(f"Confidence {record['confidence'] * 100:.1f}%")
    expect(page.locator("#number-view")).to_be_visible()
    expect(page.locator("#number-view")).to_have_attribute("data-boxes", "3")
    boxes = page.locator("#number-boxes .digit-box")
    expect(boxes).to_have_count(3)
    for i, digit in enumerate(record["digits"]):
        expect(boxes.nth(i)).to_contain_text(f"{digit['digit']} {digit['confidence'] * 100:.1f}%")
    # Each box stands over its digit: left to right, within the picture.
    picture = page.locator("#number-image").bounding_box()
    drawn = [boxes.nth(i).bounding_box() for i in range(3)]
    assert all(picture["x"] - 1 <= b["x"] and b["x"] + b["width"] <= picture["x"] + picture["width"] + 1 for b in drawn)
    assert drawn[0]["x"] < drawn[1]["x"] < drawn[2]["x"]
    expect(page.locator("#label-buttons")).to_be_hidden()
    # A wrong number is corrected with a digit string.
    page.fill("#number-label-input", "0170")
    with page.expect_response(lambda r: r.request.method == "PUT" and r.url.endswith("/label")) as saved:
        page.click("#number-label button[type='submit']")
    assert saved.value.json()["number_label"] == "0170"
    expect(page.locator("#feedback-status")).to_have_text("Saved: the right number is 0170.")
    assert api_json(base_url, f"/api/v1/predictions/{record['id']}")["number_label"] == "0170"
    expect(page.locator("#history .history-item.is-number").first).to_contain_text("170")


def test_digit_mode_offers_number_mode_for_several_digits(page):
    from playwright.sync_api import expect

    draw_with_mouse(page, shifted(ONE, -70, 0.9, 10) + shifted(SEVEN, 120, 0.55, 60))
    record = predict(page)
    assert record["verdict"] == "several_digits" and record["digit"] is None, record
    expect(page.locator("#several")).to_be_visible()
    with page.expect_response(is_predict) as response_info:
        page.click("#switch-to-number")
    again = response_info.value.json()
    expect(page.locator("#app")).to_have_attribute("data-mode", "number")
    assert again["mode"] == "number" and again["number"] == record["number"] == "17", again
    expect(page.locator("#result-digit")).to_have_text("17")
    expect(page.locator("#number-boxes .digit-box")).to_have_count(2)


def test_take_a_photo_input_uses_the_camera(page):
    photo = page.locator("#photo")
    assert photo.get_attribute("capture") == "environment" and photo.get_attribute("accept") == "image/*"


def test_photo_of_a_number_uploaded_in_number_mode(page, tmp_path, mnist_test):
    from playwright.sync_api import expect

    from mnist_web.numbers import paper_photos

    images, labels = mnist_test
    jpeg, _ = next(paper_photos(images, labels, 1, seed=1315, lengths=(2, 3)))
    path = tmp_path / "IMG_0001.jpg"
    path.write_bytes(jpeg)
    page.click("#mode-switch [data-mode='number']")
    with page.expect_response(is_upload) as response_info:
        page.set_input_files("#photo", str(path))
    record = response_info.value.json()
    assert response_info.value.status == 201 and record["mode"] == "number" and record["source"] == "upload", record
    expect(page.locator("#number-view")).to_have_attribute("data-boxes", str(len(record["digits"])))
    expect(page.locator("#number-boxes .digit-box")).to_have_count(len(record["digits"]))

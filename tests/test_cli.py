"""The flask CLI: predict files, evaluate, create the schema."""

import re

from images import cross_png


def test_predict_prints_digit_and_confidence(runner, drawing, mnist_test, tmp_path):
    paths = []
    for index in (0, 1, 2):
        path = tmp_path / f"digit{index}.png"
        path.write_bytes(drawing(index, "transparent"))
        paths.append(str(path))
    result = runner.invoke(args=["predict", *paths])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 3
    for line, index in zip(lines, (0, 1, 2), strict=True):
        match = re.fullmatch(r".*digit\d\.png: (\d) \((\d+\.\d)%\)", line)
        assert match, line
        assert int(match[1]) == mnist_test[1][index]


def test_predict_says_not_a_digit_for_an_x(runner, drawing, tmp_path):
    """Needs a model that refuses (11 classes): an X is "not a digit", a digit beside it still a digit."""
    cross, digit = tmp_path / "cross.png", tmp_path / "digit.png"
    cross.write_bytes(cross_png())
    digit.write_bytes(drawing(0))
    result = runner.invoke(args=["predict", str(cross), str(digit)])
    assert result.exit_code == 0, result.output
    refused, answered = result.output.strip().splitlines()
    assert re.fullmatch(r".*cross\.png: not a digit \((\d+\.\d)%\)", refused), refused
    assert re.fullmatch(r".*digit\.png: 7 \((\d+\.\d)%\)", answered), answered


def test_predict_reports_bad_files_and_fails(runner, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = runner.invoke(args=["predict", str(bad)])
    assert result.exit_code == 1
    assert "bad.png: error:" in result.output


def test_init_db(runner, app):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0
    assert "schema ready in the sqlite store" in result.output


def test_purge_deletes_expired_records(runner, tmp_path):
    import datetime
    import random

    from test_store_contract import make_record

    from mnist_web import create_app
    from mnist_web.db import get_store
    from mnist_web.store.base import timeuuid_at

    assert "kept forever" in runner.invoke(args=["purge"]).output
    url = f"sqlite:///{tmp_path}/kept.sqlite3"
    app = create_app({"TESTING": True, "MNIST_DATABASE_URL": url, "MNIST_RETENTION_DAYS": 3})
    try:
        old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
        with app.app_context():
            get_store().add(make_record(timeuuid_at(old, random.Random(1)), digit=3))
            assert get_store().stats().total == 1
        result = app.test_cli_runner().invoke(args=["purge"])
        assert result.exit_code == 0 and "purged 1 expired records" in result.output
        assert app.test_client().get("/api/v1/stats").get_json()["total"] == 0
    finally:
        app.extensions["mnist_web.store"].close()


def test_evaluate_counts_a_refused_number_as_wrong_and_reads_numbers_holding_a_non_digit(runner):
    result = runner.invoke(
        args=["evaluate", "--limit", "100", "--numbers", "10", "--not-digits", "20", "--pen-digits", "1"]
    )
    assert result.exit_code == 0, result.output
    figures = r"\d+\.\d\d% exact, \d+\.\d\d% per digit \(10 numbers; \d+ refused, counted wrong\)"
    pen = re.search(
        r"drawn with the page's pen: (\d+\.\d\d)% right, \d+\.\d\d% refused \(60 drawings, 60-270 px", result.output
    )
    assert pen and float(pen[1]) > 90, result.output  # 4 sizes x 15 ways of writing a digit, one each
    for name in ("canvas numbers", "numbers drawn with the page's pen", "paper photos", "paper photos on a desk"):
        line = next(line for line in result.output.splitlines() if line.startswith(f"{name}: "))
        assert re.fullmatch(f"{name}: {figures}", line), line
    apart = re.search(
        r"canvas numbers, each digit read alone from its own strokes: (\d+\.\d\d)% exact, \d+\.\d\d% per digit"
        r" \(10 numbers;",
        result.output,
    )
    assert apart and float(apart[1]) >= 50, result.output
    holding = re.search(r"holding a drawing that is no digit: (\d+\.\d\d)% refused \(10 numbers\)", result.output)
    assert holding and float(holding[1]) > 0, result.output

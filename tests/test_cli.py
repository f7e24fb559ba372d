"""The flask CLI: predict files, create the schema."""

import re


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

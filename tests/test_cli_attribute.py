"""``pyvene attribute`` end to end on the bundled model: the top cells with estimate and
exact value (equal to the API's), a heatmap file, and one-line user errors."""

from __future__ import annotations

import math

import pytest

from pyvene.cli import main

CLEAN = "When John and Mary went to the store, Mary gave a bottle to"
CORRUPT = "When John and Mary went to the store, John gave a bottle to"


@pytest.fixture(scope="module")
def bundled():
    zoo = pytest.importorskip("pyvene.zoo")
    try:
        zoo.smollm2_path()
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))


def test_attribute_prints_top_cells_with_exact_values(bundled, tmp_path, capsys):
    out = tmp_path / "a.png"
    argv = ["attribute", CLEAN, CORRUPT, "--target", " John", "--foil", " Mary",
            "--components", "head_attention_value_output,attention_output", "--layers", "26-29",
            "--method", "atp", "--top", "3", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    rows = [line.split() for line in text.splitlines() if line.strip()[:2] in ("1 ", "2 ", "3 ")]
    assert len(rows) == 3
    for row in rows:
        estimate, exact = float(row[-2]), float(row[-1])
        assert math.isfinite(exact) and math.copysign(1, estimate) == math.copysign(1, exact)
    assert "logit diff" in text and "spearman" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--components", "head_atention_value_output"], "unknown component"),
        (["--top", "0"], "--top"),
        (["--foil", " Maryxyzq"], "Maryxyzq"),
    ],
)  # fmt: skip
def test_attribute_user_errors_are_one_line(bundled, extra, needle, capsys):
    argv = ["attribute", CLEAN, CORRUPT, "--target", " John", "--no-progress", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err

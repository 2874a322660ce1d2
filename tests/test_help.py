"""``py.typed`` ships (PEP 561) so type checkers use the package's own hints."""

from __future__ import annotations

import re
from pathlib import Path

import pyvene as pv

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_ships():
    assert (Path(pv.__file__).parent / "py.typed").is_file()
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[tool\.setuptools\.package-data\]\n(.*?)(?:^\[|\Z)", text, re.M | re.S)
    assert section and re.search(r'^pyvene = \[.*"py\.typed".*\]', section.group(1), re.M)

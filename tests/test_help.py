"""``py.typed`` ships (PEP 561) so type checkers use the package's own hints."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import pyvene as pv
from pyvene import calls, generation, serialization, trainable_io

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_ships():
    assert (Path(pv.__file__).parent / "py.typed").is_file()
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r"^\[tool\.setuptools\.package-data\]\n(.*?)(?:^\[|\Z)", text, re.M | re.S)
    assert section and re.search(r'^pyvene = \[.*"py\.typed".*\]', section.group(1), re.M)


def _params(fn, skip: int = 0) -> list[str]:
    return list(inspect.signature(fn).parameters)[skip:]


@pytest.mark.parametrize(
    "method,impl,skip",
    [
        ("forward", calls.intervened_call, 2),  # (plan, model, ...)
        ("generate", generation.generate, 2),
        ("save", serialization.save, 1),  # (pvm, ...)
        ("push_to_hub", serialization.push_to_hub, 1),
        ("save_intervention", trainable_io.save_intervention, 1),
        ("load_intervention", trainable_io.load_intervention, 1),
    ],
)
def test_methods_show_the_parameters_of_their_implementation(method, impl, skip):
    """help(pvm.save) etc. list the real parameters, in the implementation's order."""
    bound = _params(getattr(pv.IntervenableModel, method), 1)  # without self
    assert bound == _params(impl, skip)


def test_load_shows_the_parameters_of_read_saved():
    assert _params(pv.IntervenableModel.load) == _params(serialization.read_saved)


def test_public_methods_have_real_signatures_and_docstrings():
    """No public method of IntervenableModel hides behind ``*args`` / ``**kwargs`` (generate's
    ``**kwargs`` are model.generate's own), and each says what it does."""
    own = [
        name
        for cls in pv.IntervenableModel.__mro__
        if cls.__module__.startswith("pyvene")
        for name, value in vars(cls).items()
        if not name.startswith("_") and callable(value)
    ]
    assert {"forward", "generate", "save", "load", "set_device", "count_parameters"} <= set(own)
    for name in own:
        fn = getattr(pv.IntervenableModel, name)
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
        assert inspect.Parameter.VAR_POSITIONAL not in kinds, name
        assert name == "generate" or inspect.Parameter.VAR_KEYWORD not in kinds, name
        assert inspect.getdoc(fn), f"{name} has no docstring"
    doc = inspect.getdoc(pv.IntervenableModel.disable_intervention_gradients)
    assert "Original-API placeholder" in doc

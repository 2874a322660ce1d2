"""``help()`` tells: IntervenableModel's public methods show their real parameters (the same
as the functions doing the work) and their own docstrings, never torch's; ``py.typed``
ships so type checkers use the package's hints."""

from __future__ import annotations

import inspect
import pydoc
from pathlib import Path

import pytest
import tomllib
from torch import nn

import pyvene as pv
from pyvene import generation, serialization, trainable_io

ROOT = Path(__file__).resolve().parents[1]


def params(fn, drop: int = 0) -> list[tuple[str, object, object]]:
    """(name, kind, default) of ``fn``'s parameters after the first ``drop``."""
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default) for p in list(sig.parameters.values())[drop:]]


WRAPPER = {"pvm", "plan"}  # what the facade passes itself as


@pytest.mark.parametrize(
    "method, module, name",
    [
        ("generate", generation, "generate"),
        ("save", serialization, "save"),
        ("load", serialization, "load"),
        ("save_intervention", trainable_io, "save_intervention"),
        ("load_intervention", trainable_io, "load_intervention"),
    ],
)
def test_facade_methods_have_the_real_parameters(method, module, name):
    """The method's parameters are those of the function that does the work (so help()
    and IDEs show them), without the wrapper the facade passes itself as."""
    drop = WRAPPER if method == "load" else WRAPPER | {"model"}
    work = [p for p in params(getattr(module, name)) if p[0] not in drop]
    mine = params(getattr(pv.IntervenableModel, method), drop=0 if method == "load" else 1)
    assert [p[0] for p in mine] == [p[0] for p in work]
    assert [p[2] for p in mine] == [p[2] for p in work]
    assert not any(p[1] is inspect.Parameter.VAR_POSITIONAL for p in mine)


def test_generate_help_shows_its_parameters():
    text = pydoc.render_doc(pv.IntervenableModel.generate, renderer=pydoc.plaintext)
    for name in ("sources", "unit_locations", "intervene_on_prompt", "timestep_selector"):
        assert name in text
    assert "*args" not in text


def test_public_methods_have_their_own_docstrings():
    cls = pv.IntervenableModel
    torch_init = inspect.getdoc(nn.Module.__init__)
    assert inspect.getdoc(cls.__init__) != torch_init and "config" in inspect.getdoc(cls.__init__)
    missing = []
    for name, member in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__str__"):
            continue
        target = (
            member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        )
        if callable(target) and not (target.__doc__ or "").strip():
            missing.append(name)
    assert missing == []


def test_py_typed_ships():
    assert (Path(pv.__file__).parent / "py.typed").is_file()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in data["tool"]["setuptools"]["package-data"]["pyvene"]

"""Start-up: ``import pyvene`` and ``pyvene --help`` import neither torch nor transformers, the
core imports torch but no transformers model class and no matplotlib, and every public name still resolves
(``from pyvene import X``, ``from pyvene import *``, ``pv.models.*``). Which modules load is
asserted, never a time: benchmarks/import_time.py measures the seconds."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pyvene

HEAVY = ("torch", "transformers", "matplotlib")


def loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; which of HEAVY are in sys.modules afterwards."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_and_cli_parser_load_nothing_heavy():
    assert loaded_after("import pyvene") == dict.fromkeys(HEAVY, False)
    help_code = "from pyvene.cli import build_parser\nbuild_parser().format_help()"
    assert loaded_after(help_code) == dict.fromkeys(HEAVY, False)


def test_core_imports_no_model_classes_or_matplotlib():
    """Using the core loads torch (and at most transformers' light config / output modules),
    never transformers' model machinery (``modeling_utils``, model classes) or matplotlib."""
    code = (
        "import pyvene as pv, pyvene.analysis, pyvene.serialization, pyvene.generation\n"
        "for name in ('IntervenableModel', 'IntervenableConfig', 'RepresentationConfig',\n"
        "             'VanillaIntervention', 'RotatedSpaceIntervention', 'CollectIntervention',\n"
        "             'FAMILIES', 'CausalModel', 'set_seed', 'type_to_module_mapping'):\n"
        "    getattr(pv, name)\n"
        "import sys\n"
        "assert not [m for m in sys.modules if m.startswith('transformers.models.')]\n"
        "assert 'transformers.modeling_utils' not in sys.modules"
    )
    loaded = loaded_after(code)
    assert loaded["torch"] and not loaded["matplotlib"]


def _type_checking_names() -> dict[str, str]:
    """name -> module of the ``if TYPE_CHECKING:`` imports in pyvene/__init__.py."""
    tree = ast.parse(Path(pyvene.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.dump(n))
    out = {}
    for node in block.body:
        for alias in node.names:
            assert alias.asname == alias.name  # explicit re-export form
            out[alias.name] = node.module or alias.name
    return out


def test_lazy_table_matches_type_checking_imports_and_all():
    static = _type_checking_names()
    lazy = {name: module for module, names in pyvene._EXPORTS.items() for name in names}
    assert {k: v for k, v in static.items() if k != "models"} == lazy
    assert sorted(pyvene.__all__) == sorted(static)
    assert set(pyvene.__all__) <= set(dir(pyvene))


def test_every_public_name_resolves_to_its_module_object():
    import importlib

    for module, names in pyvene._EXPORTS.items():
        source = importlib.import_module(f"pyvene.{module}")
        for name in names:
            assert getattr(pyvene, name) is getattr(source, name), name
    namespace: dict = {}
    exec("from pyvene import *", namespace)
    assert set(pyvene.__all__) <= set(namespace)
    assert namespace["IntervenableModel"] is pyvene.intervenable.IntervenableModel
    from transformers.utils import ModelOutput

    from pyvene.intervenable import IntervenableModelOutput
    from pyvene.interventions import InterventionOutput

    assert issubclass(IntervenableModelOutput, ModelOutput)
    assert issubclass(InterventionOutput, ModelOutput)
    assert pyvene.models.GRUConfig is pyvene.GRUConfig
    assert pyvene.models.constants.CONST_OUTPUT_HOOK == "register_forward_hook"


def test_unknown_names_raise_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        pyvene.no_such_name  # noqa: B018
    assert not hasattr(pyvene, "__wrapped__")
    assert pyvene.zoo.__name__ == "pyvene.zoo"  # submodules resolve as attributes too

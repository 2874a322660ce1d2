"""Fuzz of saved folders: one field of ``config.json`` (or one byte of the weights) is changed
at random, then the folder is loaded onto the model and called. Every outcome must be

- a :class:`pyvene.PyveneError` (``SerializationError`` / ``ConfigError`` naming the field), or
- exactly the plain-hook oracle's result (tests/oracle.py) for what the edited file now *means*:
  its layers, components, units, intervention types and the weights read back from the
  safetensors file with ``safetensors`` itself.

The expected reading of each edit is worked out here from the JSON alone (``meaning``), with no
pyvene code: an edit the reading cannot accept must be refused, an edit that changes nothing a
forward depends on (a version string) must leave the result unchanged.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import ids
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from oracle import GPT2_SITES, Invalid, Op, run
from safetensors.torch import load_file
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

import pyvene as pv

LAYERS = 3
LOWRANK = "LowRankRotatedSpaceIntervention"
WIDTH = {"mlp_activation": 96}  # of a position unit; every other GPT-2 site: 24
WIDTH = {c: WIDTH.get(c, 24) for c in GPT2_SITES}
HEAD_DIM = 6
KIND_OF = {
    "VanillaIntervention": "vanilla",
    "AdditionIntervention": "add",
    "ZeroIntervention": "zero",
    "LowRankRotatedSpaceIntervention": "lowrank",
}
# the saved configs: (component, layer, unit, type, extra representation fields)
SAVED = {
    "lowrank+zero": [
        ("block_output", 1, "pos", pv.LowRankRotatedSpaceIntervention, {"low_rank_dimension": 2}),
        ("mlp_activation", 0, "pos", pv.ZeroIntervention, {}),
    ],
    "heads+add": [
        ("head_attention_value_output", 2, "h", pv.VanillaIntervention, {}),
        ("mlp_output", 0, "pos", pv.AdditionIntervention, {}),
    ],
}
BASE_AT = {"pos": [[2]], "h": [[1]]}
SOURCE_AT = {"pos": [[1]], "h": [[3]]}
# values an edited field may get: valid and invalid of every JSON type
VALUES = [-1, 0, 1, 2, 3, 99, 1.5, True, None, "", "x", "pos", "h", "block_output",
          "mlp_output", "head_attention_value_output", "parallel", "serial",
          "VanillaIntervention", "NoSuchIntervention", [], [1], {}, {"a": 1}]  # fmt: skip


def leaves(data, path=()):
    """Every (path, value) of the JSON tree, containers included."""
    yield path, data
    if isinstance(data, dict):
        for k, v in data.items():
            yield from leaves(v, (*path, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from leaves(v, (*path, i))


def parent(data, path):
    for p in path[:-1]:
        data = data[p]
    return data


# what a representation field means when it is absent (the original's defaults)
REP_DEFAULTS = {"unit": "pos", "max_number_of_units": 1, "low_rank_dimension": None,
                "intervention_type": None, "intervention": None, "subspace_partition": None,
                "group_key": None, "intervention_link_key": None, "moe_key": None,
                "source_representation": None, "hidden_source_representation": None,
                "latent_dim": None}  # fmt: skip


OPTIONAL_TOP = {"sorted_keys", "pyvene_version", "mode", "model"}


class Either(Exception):
    """The edit leaves the forward as it was, but a strict reader may refuse it too."""


def differs(a, b) -> bool:
    """JSON values differ (``true`` is not ``1``, as it is in Python)."""
    return json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True)


def fingerprint_edit(model, model0: dict) -> bool:
    """Whether an edit of the model fingerprint is lenient (less to check: refuse or load);
    ``Invalid`` if it names another model or a field save never writes."""
    if model is None:
        return True
    if not isinstance(model, dict) or not set(model) <= set(model0):
        raise Invalid("model fingerprint keys")
    lenient = set(model) != set(model0)
    for k, v in model.items():
        if not differs(v, model0[k]):
            continue
        if v is None or (k == "model_class" and isinstance(v, str)):
            lenient = True  # unchecked: the class name only labels the message
        else:
            raise Invalid(f"model.{k} names another model")
    return lenient


def read_top(data: dict, original: dict) -> tuple[dict, bool]:
    """Top-level fields with their defaults filled in, and whether the edit is lenient."""
    top = set(original) - {"checksums"}  # a folder without checksums is an older one
    lenient = set(data) - {"checksums"} != top
    # redundant or defaulted: the entries' keys, the writer's version, the default mode, the
    # model fingerprint (a check, not a meaning)
    if lenient and (not set(data) - {"checksums"} < top or top - set(data) - OPTIONAL_TOP):
        raise Invalid("top-level keys changed")
    data = {"mode": "parallel", "pyvene_version": "", "model": original["model"], **data}
    if any(differs(data[k], original[k]) for k in ("format", "format_version", "mode")):
        raise Invalid("top-level fields changed")
    lenient |= fingerprint_edit(data["model"], original["model"])
    if "checksums" in data and differs(data["checksums"], original["checksums"]):
        raise Invalid("checksums changed")
    if not isinstance(data["pyvene_version"], str):
        raise Invalid("version")
    reps, entries = data["representations"], data["interventions"]
    if not (isinstance(reps, list) and isinstance(entries, list) and len(reps) == len(entries)):
        raise Invalid("representation / intervention lists")
    keys = [e.get("key") if isinstance(e, dict) else None for e in entries]
    if "sorted_keys" in data and differs(data["sorted_keys"], keys):
        raise Invalid("sorted_keys")
    return data, lenient


def kwargs_still_said(kw, kw0: dict, rep0: dict) -> bool:
    """Saved kwargs with some left out, each of which the representation still carries."""
    return (
        isinstance(kw, dict)
        and all(k in kw0 and not differs(v, kw0[k]) for k, v in kw.items())
        and all(not differs(rep0.get(k), v) for k, v in kw0.items() if k not in kw)
    )


def read_entry(entry, entry0: dict, rep0: dict) -> tuple[bool, int | None]:
    """(lenient, narrowed interchange_dim or None) for an intervention entry."""
    if not isinstance(entry, dict) or not set(entry) <= set(entry0):
        raise Invalid("intervention entry keys")
    lenient = set(entry) != set(entry0)  # a derivable field left out: refuse or derive
    moved = {k for k in entry if differs(entry[k], entry0[k])}
    if moved == {"use_fast"} and isinstance(entry["use_fast"], bool):
        moved = set()  # a speed option: the same numbers either way
    if moved == {"is_source_constant"} and isinstance(entry["is_source_constant"], bool):
        lenient, moved = True, set()  # derived from the type: refuse or re-derive
    if moved == {"kwargs"} and kwargs_still_said(entry["kwargs"], entry0["kwargs"], rep0):
        lenient, moved = True, set()
    derived = {k for k in moved if k in ("embed_dim", "interchange_dim") and entry[k] is None}
    if derived:
        moved, lenient = moved - derived, True  # null: derived from the site again
    dim = entry.get("interchange_dim")
    if moved == {"interchange_dim"} and type(dim) is int and 0 <= dim <= entry0["embed_dim"]:
        return lenient, dim  # acts on the first ``dim`` features only
    if moved:
        raise Invalid("intervention entry changed")  # type, dims, kwargs: the weights' shape
    return lenient, None


def count(value, none_ok: bool = False) -> bool:
    return (value is None and none_ok) or (type(value) is int and value >= 1)


def no_effect(rep: dict, changed: set, entry: dict, entry0: dict, others: list) -> set:
    """The changed representation fields that cannot change this forward."""
    kind, out = KIND_OF[entry0["type"]], set()
    link, part = rep["intervention_link_key"], rep["subspace_partition"]
    if isinstance(link, (int, str)) and not isinstance(link, bool) and link not in others:
        out.add("intervention_link_key")  # linked to nobody: shares nothing
    for size in ("low_rank_dimension", "latent_dim"):  # no type here has a latent_dim
        carried = size in entry.get("kwargs", {}) or kind != "lowrank"
        if carried and count(rep[size], none_ok=True):
            out.add(size)  # the entry's kwargs carry the rank; other types take none
    if count(rep["max_number_of_units"]) and kind != "lowrank":
        out.add("max_number_of_units")  # sizes only a flattened intervention
    if isinstance(part, list) and all(
        isinstance(p, list) and all(type(i) is int and i >= 0 for i in p) for p in part
    ):
        out.add("subspace_partition")  # read only with subspaces, never given here
    if kind == "zero" and isinstance(rep["hidden_source_representation"], (bool, type(None))):
        out.add("hidden_source_representation")  # it has no source anyway
    return out & changed


def read_rep(rep, rep0: dict) -> dict:
    if not isinstance(rep, dict) or not set(rep) <= set(rep0):
        raise Invalid("representation keys")
    if "layer" not in rep or "component" not in rep:
        raise Invalid("representation without a layer or component")
    return {**REP_DEFAULTS, **rep}


def make_op(rep: dict, entry0: dict, narrowed: int | None) -> Op:
    layer, comp, unit = rep["layer"], rep["component"], rep["unit"]
    if type(layer) is not int or not 0 <= layer < LAYERS or comp not in GPT2_SITES:
        raise Invalid("layer / component")
    heads = GPT2_SITES[comp][3]
    if unit not in (("h", "pos") if heads else ("pos",)):
        raise Invalid("unit")
    # "pos" indexes dim 1 of the tensor as the original lays it out: the heads of a head
    # component (SPEC B 3.3), so there it selects heads
    op = Op(comp, layer, "h" if heads else unit, KIND_OF[entry0["type"]])
    op.base, op.source = BASE_AT[unit], SOURCE_AT[unit]
    # the intervention acts on the first interchange_dim features of a unit (of the rotated
    # space for a rotation); a head component's per-unit width is a head's
    k = narrowed if narrowed is not None else entry0["interchange_dim"]
    rank = entry0["kwargs"].get("low_rank_dimension")
    width = rank if op.kind == "lowrank" else WIDTH[comp] if op.unit == "pos" else HEAD_DIM
    if k < width:
        op.dims = [list(range(k))]
    return op


def meaning(data: dict, original: dict, weights: dict[str, torch.Tensor]) -> list[Op]:
    """The interventions the edited file describes; ``Invalid`` if it describes none,
    ``Either`` (carrying them) if a strict reader may also refuse the edit."""
    data, lenient = read_top(data, original)
    reps, ops = data["representations"], []
    pairs = zip(reps, data["interventions"], original["representations"], original["interventions"])
    for i, (rep, entry, rep0, entry0) in enumerate(pairs):
        rep = read_rep(rep, rep0)
        loose, narrowed = read_entry(entry, entry0, rep0)
        changed = {k for k in rep if differs(rep[k], rep0[k])}
        others = [r.get("intervention_link_key") for j, r in enumerate(reps) if j != i]
        ignored = no_effect(rep, changed, entry, entry0, others)
        if changed - ignored - {"layer", "component", "unit"}:
            raise Invalid(f"representation fields {sorted(changed - ignored)}")
        op = make_op(rep, entry0, narrowed)
        if op.kind == "lowrank":
            # moved to another site (the key still names the old one): refuse, or apply the
            # same rotation there if it fits that site's width
            op.weight = rotation(weights, f"{entry0['key']}/rotate_layer.")
            op.max_units = rep0["max_number_of_units"]
        lenient |= loose or bool(ignored - {"intervention_link_key", "subspace_partition",
                                            "hidden_source_representation"})  # fmt: skip
        lenient |= op.kind == "lowrank" and bool(changed)
        ops.append(op)
    if lenient:
        raise Either(ops)
    return ops


def rotation(weights: dict[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """The orthogonal ``W`` stored under ``prefix``, rebuilt with torch's own parametrization
    (the file keeps the parametrization's state, not ``W``)."""
    state = {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}
    holder = nn.Module()
    holder.weight = nn.Parameter(torch.empty(state["parametrizations.weight.original"].shape))
    orthogonal(holder, "weight")
    holder.load_state_dict(state)
    return holder.weight.detach()


@pytest.fixture(scope="module")
def folders(gpt2, tmp_path_factory):
    """One saved folder per entry of SAVED (the trained-looking rotation is random)."""
    torch.manual_seed(0)
    out = {}
    for name, reps in SAVED.items():
        config = [{"layer": layer, "component": comp, "unit": unit, "intervention_type": kind,
                   **extra} for comp, layer, unit, kind, extra in reps]  # fmt: skip
        pvm = pv.IntervenableModel(config, gpt2)
        folder = tmp_path_factory.mktemp(name.replace("+", "_"))
        pvm.save(str(folder))
        out[name] = folder
    return out


def edit(draw, folder: Path, work: Path) -> tuple[dict, str, tuple]:
    """Copy ``folder`` to ``work`` with one random edit; returns the edited JSON, what was
    done, and the path's last two keys (the field and its container; empty for weights)."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(folder, work)
    data = json.loads((work / "config.json").read_text())
    action = draw(st.sampled_from(["set", "set", "set", "delete", "add", "weights"]))
    if action == "weights":
        raw = bytearray((work / "interventions.safetensors").read_bytes())
        at = draw(st.integers(0, len(raw) - 1))
        raw[at] ^= 1 << draw(st.integers(0, 7))
        (work / "interventions.safetensors").write_bytes(bytes(raw))
        if draw(st.booleans()):
            del data["checksums"]  # a folder from before checksums: no check to catch it
            (work / "config.json").write_text(json.dumps(data))
        return data, f"weights byte {at}", ()
    paths = [p for p, _ in leaves(data) if p]
    path = draw(st.sampled_from(paths))
    if action == "add":
        target = parent(data, path)
        target = target if isinstance(target, dict) else data
        target["unexpected_field"] = draw(st.sampled_from(VALUES))
        what, path = "unknown key", (*path[:-1], "unexpected_field")
    elif action == "delete":
        container = parent(data, path)
        del container[path[-1]]
        what = f"delete {path}"
    else:
        parent(data, path)[path[-1]] = draw(st.sampled_from(VALUES))
        what = f"set {path}"
    (work / "config.json").write_text(json.dumps(data))
    return data, what, path[-2:]  # the field or its container: either may be named


@settings(
    max_examples=1000, derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck), phases=[Phase.generate],
)  # fmt: skip
@given(data=st.data())
def test_edited_folder_is_refused_or_means_what_it_says(gpt2, folders, tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(folders)))
    folder = folders[name]
    work = tmp_path_factory.getbasetemp() / "fuzz_folder_work"
    edited, what, field = edit(data.draw, folder, work)
    original = json.loads((folder / "config.json").read_text())
    base, source = ids(2, 5, 1), ids(2, 5, 2)
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in gpt2.modules())
    try:
        loaded = pv.IntervenableModel.load(str(work), gpt2)
        src = [SOURCE_AT[r.unit] for r in loaded.representations.values()]
        dst = [BASE_AT[r.unit] for r in loaded.representations.values()]
        with torch.no_grad():
            _, out = loaded(base, [source], {"sources->base": (src, dst)})
        got = out.logits
    except pv.PyveneError as err:
        got = err
    except Exception as err:  # noqa: BLE001 - the test's point: nothing but PyveneError
        pytest.fail(f"{what}: raw {type(err).__name__}: {err}")
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in gpt2.modules())
    may_refuse = False
    try:
        weights = load_file(str(work / "interventions.safetensors"))
        ops = meaning(edited, original, weights)
    except Either as lenient:
        ops, may_refuse = lenient.args[0], True
    except Invalid as why:
        assert isinstance(got, pv.PyveneError), f"{what}: accepted, but {why}"
        named = [str(f) for f in field if isinstance(f, str)]
        if named and isinstance(got, pv.SerializationError):
            assert any(n in str(got) for n in named), f"{what}: names none of {named}: {got}"
        event(f"refused: {type(got).__name__}")
        return
    except Exception:  # noqa: BLE001 - safetensors cannot read the edited file
        assert isinstance(got, pv.PyveneError), f"{what}: unreadable weights accepted"
        event("refused: unreadable weights")
        return
    try:
        want = run(gpt2, GPT2_SITES, ops, base, source)
    except Invalid as why:  # e.g. a rotation moved to a site of another width
        assert isinstance(got, pv.PyveneError), f"{what}: accepted, but {why}"
        event("refused: does not fit the site")
        return
    if isinstance(got, pv.PyveneError):
        # a readable edit may be refused when a strict reader could refuse it, or when the
        # weights no longer match the recorded checksum
        checksum = "checksum" in str(got).lower()
        assert may_refuse or checksum, f"{what}: refused a valid folder: {got}"
        event("refused: checksum" if checksum else "refused: strict reading")
        return
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    event("accepted: equal to the oracle")


def test_meaning_reads_an_unedited_folder(gpt2, folders):
    """The oracle's reading of a folder as saved equals what the saved model computes, so
    the fuzz's 'accepted' branch is reachable and compares against the right thing."""
    for name, folder in folders.items():
        data = json.loads((folder / "config.json").read_text())
        ops = meaning(
            copy.deepcopy(data), data, load_file(str(folder / "interventions.safetensors"))
        )
        loaded = pv.IntervenableModel.load(str(folder), gpt2)
        base, source = ids(2, 5, 1), ids(2, 5, 2)
        src = [SOURCE_AT[o.unit] for o in ops]
        dst = [BASE_AT[o.unit] for o in ops]
        with torch.no_grad():
            _, out = loaded(base, [source], {"sources->base": (src, dst)})
        want = run(gpt2, GPT2_SITES, ops, base, source)
        torch.testing.assert_close(out.logits, want, rtol=1e-4, atol=1e-5, msg=name)
        # and the edits the fuzz makes do change the result (the comparison can fail)
        plain = gpt2(**base).logits
        assert (out.logits - plain).abs().max() > 1e-4, name

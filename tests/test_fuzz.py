"""Fuzz: random configs, locations (units pos / h / h.pos, batch sizes, every broadcasting
form), subspaces and intervention types on tiny GPT-2 and Llama (GQA) models. Every outcome
is the plain-hook oracle's result (tests/oracle.py, which shares no code with pyvene) or a
PyveneError; no other exception type, and no hook is ever left on the model.

Cases are drawn by meaning (which units of which example), then written in one of the
equivalent user forms; a few are corrupted on purpose (out of range, wrong nesting, counts
that differ), and those must raise a PyveneError.
"""

from __future__ import annotations

import pytest
import torch
from conftest import ids
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from oracle import GPT2_SITES, LLAMA_SITES, Invalid, Op, run

import pyvene as pv

KINDS = {
    "vanilla": pv.VanillaIntervention,
    "add": pv.AdditionIntervention,
    "sub": pv.SubtractionIntervention,
    "zero": pv.ZeroIntervention,
    "collect": pv.CollectIntervention,
    "lowrank": pv.LowRankRotatedSpaceIntervention,
}
WIDTH = {  # last dim of a gathered unit: component width, or head_dim for heads
    "gpt2": {"mlp_activation": 96, "head_attention_value_output": 6, "head_key_output": 6},
    "llama": {"mlp_activation": 48, "head_attention_value_output": 8, "head_key_output": 8},
}
DEFAULT_WIDTH = {"gpt2": 24, "llama": 32}
RANK = 2


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def units(draw, size: int, most: int) -> list[int]:
    """1..most distinct in-range indices, some negative."""
    picked = draw(st.lists(st.integers(0, size - 1), min_size=1, max_size=most, unique=True))
    return [p - size if draw(st.booleans()) and p % 3 == 0 else p for p in picked]


def per_example(draw, batch: int, make) -> list:
    """One list for the whole batch, or one per example (same length)."""
    if batch == 1 or draw(st.booleans()):
        return [make()]
    first = make()
    rows = [first]
    for _ in range(batch - 1):
        row = make()
        while len(row) != len(first):
            row = make()
        rows.append(row)
    return rows


def selection(draw, unit, seq, heads, batch, count=None):
    """Per-example selection in meaning; ``count`` fixes the unit count (source = base)."""
    if unit == "h.pos":
        nh, np_ = count or (draw(st.integers(1, 2)), draw(st.integers(1, min(2, seq))))
        hs = per_example(draw, batch, lambda: fixed(draw, heads, nh))
        ps = per_example(draw, batch, lambda: fixed(draw, seq, np_))
        return (hs, ps), (nh, np_)
    size = heads if unit == "h" else seq
    n = count or draw(st.integers(1, min(size, 3 if unit == "pos" else 2)))
    return per_example(draw, batch, lambda: fixed(draw, size, n)), n


def fixed(draw, size: int, n: int) -> list[int]:
    got = units(draw, size, n)
    while len(got) < n:
        got = units(draw, size, n)
    return got[:n]


def draw_case(data, models):
    draw = data.draw
    name = draw(st.sampled_from(["gpt2", "llama"]))
    model, sites = models[name], (GPT2_SITES if name == "gpt2" else LLAMA_SITES)
    batch, seq = draw(st.integers(1, 3)), draw(st.integers(2, 5))
    src_seq = seq + draw(st.sampled_from([0, 0, 1]))
    src_batch = draw(st.sampled_from([batch, batch, batch, 1]))
    ops, located = [], draw(st.booleans())
    for _ in range(draw(st.integers(1, 2))):
        comp = draw(st.sampled_from(sorted(sites)))
        heads = sites[comp][3]
        unit = draw(st.sampled_from(["h", "h.pos"])) if heads else "pos"
        kinds = ["vanilla", "add", "sub", "zero", "collect"] + ([] if heads else ["lowrank"])
        op = Op(comp, draw(st.integers(0, 2)), unit, draw(st.sampled_from(kinds)))
        if located:
            op.base, count = selection(draw, unit, seq, heads, batch)
            op.source, _ = selection(draw, unit, src_seq, heads, batch, count)
            if op.kind == "lowrank":
                op.max_units = count
        if draw(st.integers(0, 3)) == 0:
            width = RANK if op.kind == "lowrank" else WIDTH[name].get(comp, DEFAULT_WIDTH[name])
            op.dims = per_example(draw, batch, lambda w=width: units(draw, w, 3))
        ops.append(op)
    return name, model, sites, batch, seq, src_seq, src_batch, ops


def render(draw, ops, batch):
    """User forms of the locations and subspaces, plus whether a corruption was injected."""
    broken = False
    corrupt = draw(st.integers(0, 9)) == 0
    src = [None if o.base is None else _entry(o, o.source) for o in ops]
    base = [None if o.base is None else _entry(o, o.base) for o in ops]
    if corrupt and any(o.base is not None for o in ops):
        i = next(i for i, o in enumerate(ops) if o.base is not None)
        how = draw(st.sampled_from(["range", "count", "nest", "entries"]))
        broken = True
        if how == "range":
            base[i] = _shift(base[i], ops[i].unit, 50)
        elif how == "count" and ops[i].unit != "h.pos":
            src[i] = [row + row for row in src[i]]
        elif how == "count":
            base[i] = _shift(base[i], "h.pos", -50)
        elif how == "nest":
            base[i] = base[i] * (batch + 1) if ops[i].unit != "h.pos" else base[i][0]
        else:
            src, base = src + [None], base + [None]
    locations = None
    if any(b is not None for b in base):
        locations = {"sources->base": (src, base)}
        short = _shorthand(ops)
        if short is not None and not broken and draw(st.booleans()):
            locations = {"sources->base": short}
        elif not broken and all(not o.needs_source for o in ops) and draw(st.booleans()):
            locations = {"base": base}  # sourceless interventions: the base side only
    subspaces = None
    if any(o.dims is not None for o in ops):
        subspaces = [o.dims for o in ops]
        same = {repr(o.dims) for o in ops}
        if len(same) == 1 and len(ops[0].dims) == 1 and draw(st.booleans()):
            dims = ops[0].dims[0]
            subspaces = dims[0] if len(dims) == 1 and draw(st.booleans()) else dims
    return locations, subspaces, broken


def _entry(op, sel):
    return [sel[0], sel[1]] if op.unit == "h.pos" else sel


def _shift(entry, unit, by):
    if unit == "h.pos":
        return [entry[0], [[p + by for p in row] for row in entry[1]]]
    return [[p + by for p in row] for row in entry]


def _shorthand(ops):
    """The int / pair / flat-list shorthand, when every op selects the same positions of
    every example (one list for the batch) on both sides."""
    if any(o.unit != "pos" or o.base is None or len(o.base) + len(o.source) != 2 for o in ops):
        return None
    if len({repr((o.source, o.base)) for o in ops}) != 1:
        return None
    s, b = ops[0].source[0], ops[0].base[0]
    if len(b) == 1:
        return b[0] if s == b else (s[0], b[0])
    if len(b) >= 3 and s == b:
        return b
    return None


def config_for(ops, name):
    reps = []
    for o in ops:
        rep = {"layer": o.layer, "component": o.component, "unit": o.unit,
               "intervention_type": KINDS[o.kind], "max_number_of_units": o.max_units}  # fmt: skip
        if o.kind == "lowrank":
            rep["low_rank_dimension"] = RANK
        reps.append(rep)
    return reps


@pytest.fixture(scope="module")
def models(gpt2, llama):
    """One intra-op thread: tiny forwards are pure overhead, and on a shared, loaded machine
    thread hand-offs make each one many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield {
        "gpt2": gpt2,
        "llama": llama,
        "hooks": {id(gpt2): hook_count(gpt2), id(llama): hook_count(llama)},
    }
    torch.set_num_threads(threads)


@settings(
    max_examples=2000, derandomize=True, database=None, deadline=None,
    suppress_health_check=list(HealthCheck), phases=[Phase.generate],
)  # fmt: skip
@given(data=st.data())
def test_fuzz_against_plain_hooks(models, data):
    name, model, sites, batch, seq, src_seq, src_batch, ops = draw_case(data, models)
    locations, subspaces, broken = render(data.draw, ops, batch)
    base, source = ids(batch, seq, 1), ids(src_batch, src_seq, 2)
    mode = data.draw(st.sampled_from(["auto", False, True]))
    got = collected = None
    try:
        pvm = pv.IntervenableModel(config_for(ops, name), model, batch_sources=mode)
        for op, key in zip(ops, pvm.sorted_keys):
            if op.kind == "lowrank":
                op.weight = pvm.interventions[key].rotate_layer.weight.detach().clone()
        with torch.no_grad():
            first, out = pvm(base, [source], locations, subspaces=subspaces)
        got = out.logits
        collected = first[1] if any(o.kind == "collect" for o in ops) else []
    except pv.PyveneError as err:
        got = err
    assert hook_count(model) == models["hooks"][id(model)]
    if broken:
        assert isinstance(got, pv.PyveneError), f"corrupted input accepted: {locations}"
        event("corrupted: refused")
        return
    try:
        want = run(model, sites, ops, base, source)
    except Invalid as why:
        assert isinstance(got, pv.PyveneError), f"pyvene accepted an invalid input ({why})"
        event(f"invalid: refused ({type(got).__name__})")
        return
    assert hook_count(model) == models["hooks"][id(model)]
    assert not isinstance(got, Exception), f"valid input refused: {got!r}"
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    event(f"valid: equal to the oracle ({'located' if locations else 'whole tensor'})")
    wanted = [t for o in ops for t in o.collected]
    assert len(collected) == len(wanted)
    for a, b in zip(collected, wanted):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)

"""The recurrent unit "t" on the bundled GRU: a cell runs once per timestep, and an intervention
touches only the chosen timesteps of the chosen examples (SPEC A "Fix", B 9 #9).

Every expectation comes from plain torch hooks written here: a hook that counts the calls of
the cell module and records, or replaces, the tensor at chosen calls and rows."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv
from pyvene.models import GRUConfig, GRUForClassification, GRULMHeadModel, GRUModel

H, SEQ = 8, 5


def make_classifier(seed: int = 0) -> GRUForClassification:
    torch.manual_seed(seed)
    return GRUForClassification(
        GRUConfig(h_dim=H, n_layer=2, n_labels=3, pdrop=0.0, initializer_range=0.5)
    ).eval()


def embeds(batch: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"inputs_embeds": torch.randn(batch, SEQ, H, generator=g)}


# Component -> (module path in GRUForClassification, hook side, [start, end) of the last dim).
CELL = {
    "cell_input": ("gru.cells.{i}", "input", None),
    "cell_output": ("gru.cells.{i}", "output", None),
    "x2h_output": ("gru.cells.{i}.x2h", "output", None),
    "reset_x2h_output": ("gru.cells.{i}.x2h", "output", (0, H)),
    "update_h2h_output": ("gru.cells.{i}.h2h", "output", (H, 2 * H)),
    "new_h2h_output": ("gru.cells.{i}.h2h", "output", (2 * H, 3 * H)),
    "new_gate_input": ("gru.cells.{i}.new_act", "input", None),
    "update_gate_output": ("gru.cells.{i}.update_act", "output", None),
}


def module_of(model, component, layer):
    path, side, part = CELL[component]
    return model.get_submodule(path.format(i=layer)), side, part


def per_call(module, side, fn):
    """A plain hook calling ``fn(call_index, tensor)``; a returned tensor replaces it."""
    calls = [0]

    def run(x):
        step = calls[0]
        calls[0] += 1
        return fn(step, x)

    if side == "output":
        return module.register_forward_hook(lambda m, a, out: run(out))

    def pre(m, args):
        new = run(args[0])
        return None if new is None else (new, *args[1:])

    return module.register_forward_pre_hook(pre)


def record(model, component, layer, inputs):
    """(B, T, D) of the component at every call, by a plain hook."""
    module, side, part = module_of(model, component, layer)
    seen = []
    handle = per_call(module, side, lambda t, x: seen.append(x.detach().clone()))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    out = torch.stack(seen, 1)
    return out if part is None else out[..., part[0] : part[1]]


def run_patched(model, component, layer, inputs, patches):
    """Logits with ``patches[(row, step)] = value`` written into the component at that call."""
    module, side, part = module_of(model, component, layer)
    start, end = part or (0, None)

    def patch(step, x):
        rows = [(b, v) for (b, t), v in patches.items() if t == step]
        if not rows:
            return None
        x = x.clone()
        for b, value in rows:
            x[b, start:end] = value
        return x

    handle = per_call(module, side, patch)
    try:
        with torch.no_grad():
            return model(**inputs)[0]
    finally:
        handle.remove()


def pvm_for(model, component, layer=1, intervention=pv.VanillaIntervention, **kw):
    config = {"layer": layer, "component": component, "unit": "t", **kw}
    return pv.IntervenableModel(dict(config, intervention_type=intervention), model)


def no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# --------------------------------------------------------------------------- collect
@pytest.mark.parametrize("component", sorted(CELL))
def test_collect_at_chosen_timesteps_equals_plain_hook(component):
    model = make_classifier()
    base = embeds(2, 1)
    steps = [[1, 3], [4, 0]]
    every = record(model, component, 1, base)
    pvm = pvm_for(model, component, intervention=pv.CollectIntervention)
    with torch.no_grad():
        (_, got), out = pvm(base, unit_locations={"base": [steps]})
    expected = torch.stack([every[b, steps[b]] for b in range(2)])
    assert got[0].shape == (2, 2, every.shape[-1])
    torch.testing.assert_close(got[0], expected, rtol=0, atol=0)
    torch.testing.assert_close(out[0], model(**base)[0])  # collect changes nothing
    with torch.no_grad():  # None: every timestep, (B, T, D)
        (_, got), _ = pvm(base)
    torch.testing.assert_close(got[0], every, rtol=0, atol=0)
    assert no_hooks(model)


# --------------------------------------------------------------------------- interchange
@pytest.mark.parametrize("t_src,t_base", [(1, 3), (4, 0), (2, 2)])
@pytest.mark.parametrize("component", ["cell_output", "cell_input", "update_h2h_output"])
def test_vanilla_interchange_equals_manual_patch(component, t_src, t_base):
    """(4, 0): the source timestep comes after the base one (no one-pass batching)."""
    model = make_classifier()
    base, source = embeds(2, 1), embeds(2, 2)
    src = record(model, component, 1, source)
    expected = run_patched(
        model, component, 1, base, {(b, t_base): src[b, t_src] for b in range(2)}
    )
    pvm = pvm_for(model, component)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": ([[[t_src]]], [[[t_base]]])})
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(out[0], model(**base)[0])
    with torch.no_grad():  # the (source, base) pair shorthand means the same
        _, short = pvm(base, [source], {"sources->base": (t_src, t_base)})
    torch.testing.assert_close(short[0], out[0], rtol=0, atol=0)


def test_per_example_timesteps_in_one_batch():
    model = make_classifier()
    base, source = embeds(3, 1), embeds(3, 2)
    src_steps = [[0, 4], [2, 1], [4, 3]]
    base_steps = [[3, 1], [1, 0], [4, 2]]
    src = record(model, "cell_output", 0, source)
    patches = {(b, tb): src[b, ts] for b in range(3) for ts, tb in zip(src_steps[b], base_steps[b])}
    expected = run_patched(model, "cell_output", 0, base, patches)
    pvm = pvm_for(model, "cell_output", layer=0)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": ([src_steps], [base_steps])})
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-6)


def test_examples_and_timesteps_not_chosen_are_untouched():
    """Zero at timestep 1 of example 0 and timestep 3 of example 1, on the last layer: the
    per-step outputs of the GRU equal the clean run everywhere else, bit for bit."""
    torch.manual_seed(0)
    model = GRUModel(GRUConfig(h_dim=H, n_layer=2, pdrop=0.0, initializer_range=0.5)).eval()
    base = embeds(2, 1)
    with torch.no_grad():
        clean = model(**base)[0]  # (B, S, H), the last layer's cell outputs
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "cell_output", "unit": "t",
         "intervention_type": pv.ZeroIntervention}, model,
    )  # fmt: skip
    with torch.no_grad():
        _, out = pvm(base, unit_locations={"base": [[[1], [3]]]})
    expected = clean.clone()
    expected[0, 1] = 0  # what a plain hook zeroing those two (row, call) pairs leaves
    expected[1, 3] = 0
    torch.testing.assert_close(out[0][:, :1], clean[:, :1], rtol=0, atol=0)
    torch.testing.assert_close(out[0][1, :3], clean[1, :3], rtol=0, atol=0)
    torch.testing.assert_close(out[0][0, 1], expected[0, 1], rtol=0, atol=0)
    torch.testing.assert_close(out[0][1, 3], expected[1, 3], rtol=0, atol=0)
    assert not torch.equal(out[0][0, 2:], clean[0, 2:])  # later steps of example 0 feel it


def test_zero_base_shorthand_touches_only_that_timestep():
    """The tutorial's form: ZeroIntervention, unit "t", {"base": 3}."""
    model = make_classifier()
    base = embeds(2, 1)
    expected = run_patched(
        model, "cell_output", 0, base, {(b, 3): torch.zeros(H) for b in range(2)}
    )
    pvm = pvm_for(model, "cell_output", layer=0, intervention=pv.ZeroIntervention)
    with torch.no_grad():
        _, out = pvm(base, unit_locations={"base": 3})
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-6)


def test_base_only_locations_read_the_source_at_the_same_timestep():
    model = make_classifier()
    base, source = embeds(2, 1), embeds(2, 2)
    src = record(model, "cell_output", 1, source)
    expected = run_patched(model, "cell_output", 1, base, {(b, 2): src[b, 2] for b in range(2)})
    pvm = pvm_for(model, "cell_output")
    with torch.no_grad():
        _, out = pvm(base, [source], {"base": 2})
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-6)
    with torch.no_grad():  # None: every base step takes the source's same step
        _, every = pvm(base, [source])
    patches = {(b, t): src[b, t] for b in range(2) for t in range(SEQ)}
    torch.testing.assert_close(
        every[0], run_patched(model, "cell_output", 1, base, patches), rtol=1e-6, atol=1e-6
    )


def test_lm_head_model_with_token_ids():
    torch.manual_seed(0)
    cfg = GRUConfig(h_dim=H, n_layer=1, include_emb=True, vocab_size=20, pdrop=0.0)
    model = GRULMHeadModel(cfg).eval()
    base = {"input_ids": torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])}
    source = {"input_ids": torch.tensor([[9, 8, 7, 6], [5, 4, 3, 2]])}
    seen = []
    handle = model.gru.cells[0].register_forward_hook(lambda m, a, o: seen.append(o.clone()))
    with torch.no_grad():
        model(**source)
    handle.remove()

    def patch(m, a, o):
        patch.calls += 1
        return seen[0] if patch.calls - 1 == 2 else None

    patch.calls = 0
    handle = model.gru.cells[0].register_forward_hook(patch)
    with torch.no_grad():
        expected = model(**base)[0]
    handle.remove()
    pvm = pv.IntervenableModel({"layer": 0, "component": "cell_output", "unit": "t"}, model)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": (0, 2)})
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-6)


def test_gradient_reaches_a_trainable_intervention_through_the_chosen_step():
    model = make_classifier()
    base, source = embeds(2, 1), embeds(2, 2)
    pvm = pvm_for(
        model, "cell_output", intervention=pv.LowRankRotatedSpaceIntervention,
        low_rank_dimension=2,
    )  # fmt: skip
    _, out = pvm(base, [source], {"sources->base": (1, 3)})
    out[0].sum().backward()
    grads = [p.grad for p in pvm.interventions[pvm.sorted_keys[0]].parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_source_run_stops_after_the_last_chosen_timestep():
    """A user's hook counts cell calls: source stops after call 1 (2 calls), base runs 5."""
    model = make_classifier()
    base, source = embeds(2, 1), embeds(2, 2)
    calls = []
    handle = model.gru.cells[0].register_forward_hook(lambda m, a, o: calls.append(1))
    try:
        pvm = pvm_for(model, "cell_output", layer=0)
        with torch.no_grad():
            pvm(base, [source], {"sources->base": (1, 3)})
        assert len(calls) == 2 + SEQ
        assert len(model.gru.cells[0]._forward_hooks) == 1  # the user's hook stays
    finally:
        handle.remove()
    assert no_hooks(model)


# --------------------------------------------------------------------------- errors
def test_base_timestep_out_of_range_names_it_and_the_timestep_count():
    model = make_classifier()
    pvm = pvm_for(model, "cell_output", intervention=pv.ZeroIntervention)
    with pytest.raises(pv.LocationError) as err:
        pvm(embeds(2, 1), unit_locations={"base": [[[1], [7]]]})
    msg = str(err.value)
    assert "timestep 7" in msg and f"it has {SEQ} timestep(s)" in msg and "0..4" in msg
    assert no_hooks(model)


def test_source_timestep_out_of_range_names_it_and_the_timestep_count():
    model = make_classifier()
    pvm = pvm_for(model, "cell_output")
    with pytest.raises(pv.LocationError) as err:
        pvm(embeds(2, 1), [embeds(2, 2)], {"sources->base": (6, 1)})
    msg = str(err.value)
    assert "source timestep 6" in msg and f"it has {SEQ} timestep(s)" in msg
    assert no_hooks(model)


def test_negative_timestep_is_refused():
    pvm = pvm_for(make_classifier(), "cell_output", intervention=pv.ZeroIntervention)
    with pytest.raises(pv.LocationError, match="timestep -1 is negative"):
        pvm(embeds(1, 1), unit_locations={"base": -1})


def test_cell_component_with_a_position_unit_is_refused():
    with pytest.raises(pv.ConfigError, match="takes unit 't'"):
        pv.IntervenableModel({"layer": 0, "component": "cell_output"}, make_classifier())


def test_hooks_are_removed_when_the_forward_raises():
    model = make_classifier()
    pvm = pvm_for(model, "cell_output")
    with pytest.raises(RuntimeError):  # the base has the wrong width
        pvm({"inputs_embeds": torch.randn(2, SEQ, H + 1)}, [embeds(2, 2)], {"base": 1})
    assert no_hooks(model)


def test_serial_mode_chains_timesteps_through_sources():
    """source_0 step 1 (layer 0) -> source_1 step 2; that run's layer-1 step 3 -> base step 4."""
    model = make_classifier()
    base, s0, s1 = embeds(2, 1), embeds(2, 2), embeds(2, 3)
    first = record(model, "cell_output", 0, s0)
    module, _, _ = module_of(model, "cell_output", 0)
    handle = per_call(module, "output", lambda t, x: first[:, 1].clone() if t == 2 else None)
    try:
        mid = record(model, "cell_output", 1, s1)  # source_1 patched by source_0
    finally:
        handle.remove()
    assert not torch.allclose(mid[:, 3], record(model, "cell_output", 1, s1)[:, 3])
    expected = run_patched(model, "cell_output", 1, base, {(b, 4): mid[b, 3] for b in range(2)})
    config = pv.IntervenableConfig(
        [{"layer": 0, "component": "cell_output", "unit": "t"},
         {"layer": 1, "component": "cell_output", "unit": "t"}],
        mode="serial",
    )  # fmt: skip
    pvm = pv.IntervenableModel(config, model)
    locs = {"source_0->source_1": (1, 2), "source_1->base": (3, 4)}
    with torch.no_grad():
        _, out = pvm(base, [s0, s1], locs)
    torch.testing.assert_close(out[0], expected, rtol=1e-6, atol=1e-6)
    assert no_hooks(model)


def test_is_model_stateless_is_false_only_for_recurrent_models(gpt2):
    gru = pv.IntervenableModel({"layer": 0, "component": "block_output"}, make_classifier())
    tfm = pv.IntervenableModel({"layer": 0, "component": "block_output"}, gpt2)
    assert gru.is_model_stateless is False
    assert tfm.is_model_stateless is True

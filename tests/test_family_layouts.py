"""Fused and flattened layouts beyond the per-component conformance of test_families.py:

* GPT-NeoX's per-head interleaved QKV (``Interleaved`` parts): raw column maps, a patch with
  a separate (shorter) source run, sweeps;
* OPT's token-flattened (B * S, W) MLP tensors (``tokens_from``): separate source runs,
  generation with a KV cache, sweeps, and module paths keeping the raw tensor;
* Mixtral: no per-expert units; whole-tensor Collect / Zero by module path.

Every expectation is a plain torch hook on the HF submodule with a hand-written reshape.
"""

from __future__ import annotations

import pytest
import torch
from conftest import captured, hooked
from family_refs import model_for, out_tensor

import pyvene as pv
from pyvene.analysis import patching_sweep
from pyvene.families import resolve_site
from pyvene.gather import gather

V = 60


def _ids(batch, seq, seed):
    return {"input_ids": torch.randint(1, V, (batch, seq), generator=torch.Generator().manual_seed(seed))}  # fmt: skip


def _patched(model, module, side, inputs, edit):
    handle = hooked(module, side, lambda x: edit(x.clone()))
    try:
        with torch.no_grad():
            return out_tensor(model(**inputs))
    finally:
        handle.remove()


# --------------------------------------------------------------------------- GPT-NeoX
@pytest.mark.parametrize("component,index", [("query_output", 0), ("head_key_output", 1), ("value_output", 2)])  # fmt: skip
def test_neox_parts_follow_the_per_head_layout(component, index):
    """Gathering a tensor of raw column numbers shows which raw columns a component reads."""
    model, _ = model_for("gpt_neox")
    h, d = model.config.num_attention_heads, model.config.hidden_size
    dh = d // h
    columns = torch.arange(3 * d).view(1, 1, 3 * d)
    site = resolve_site(model, 1, component)
    expect = torch.arange(3 * d).view(h, 3, dh)[:, index, :]  # (H, Dh)
    got = gather(columns, site, None)
    assert torch.equal(got.reshape(h, dh) if site.heads else got.view(h, dh), expect)
    gpt2_site = resolve_site(model_for("gpt2")[0], 1, component)  # contiguous thirds
    got = gather(columns, gpt2_site, None).reshape(-1)
    assert torch.equal(got, torch.arange(index * d, (index + 1) * d))


def test_neox_head_value_patch_from_shorter_source():
    """Different source / base lengths: a separate source pass, then scatter into the strided
    V view of head 2 at base position 6 only."""
    model, _ = model_for("gpt_neox")
    module = model.gpt_neox.layers[1].attention.query_key_value
    h = model.config.num_attention_heads
    base, source = _ids(2, 7, 11), _ids(2, 4, 12)
    src = captured(model, module, "output", source).view(2, 4, h, 3, -1)

    def edit(x):
        x.view(2, 7, h, 3, -1)[:, 6, 2, 2] = src[:, 3, 2, 2]
        return x

    expected = _patched(model, module, "output", base, edit)
    pvm = pv.IntervenableModel({"layer": 1, "component": "head_value_output", "unit": "h.pos"}, model)  # fmt: skip
    loc = [[[[2]] * 2, [[3]] * 2]], [[[[2]] * 2, [[6]] * 2]]
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": loc})
    torch.testing.assert_close(out_tensor(out), expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(expected, out_tensor(model(**base)), atol=1e-4)


def _sweep_reference(model, base, source, component, layer, pos, head, metric):
    unit = "h.pos" if head is not None else "pos"
    pvm = pv.IntervenableModel({"layer": layer, "component": component, "unit": unit}, model)
    loc = [[[head]], [[pos]]] if head is not None else [[pos]]
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": ([loc], [loc])})
    return metric(out.logits[:, -1]).mean().item()


@pytest.mark.parametrize("model_type,component", [("gpt_neox", "key_output"), ("gpt_neox", "head_query_output"), ("opt", "mlp_activation")])  # fmt: skip
def test_sweeps_on_fused_and_flat_components_equal_per_cell_runs(model_type, component):
    model, _ = model_for(model_type)
    base, source = _ids(1, 5, 21), _ids(1, 5, 22)

    def metric(logits):
        return logits[:, 7] - logits.mean(-1)

    head = 1 if component.startswith("head_") else None
    res = patching_sweep(model, base, source, metric, component, progress=False,
                         per_position=True if head is not None else None,
                         heads=[head] if head is not None else None)  # fmt: skip
    grid = res[component]
    for layer in range(2):
        for pos in (0, 3, 4):
            got = grid[layer, 0, pos] if head is not None else grid[layer, pos]
            want = _sweep_reference(model, base, source, component, layer, pos, head, metric)
            assert got.item() == pytest.approx(want, abs=1e-5)
    assert grid.std() > 0  # the patches do something


# --------------------------------------------------------------------------- OPT
def test_opt_mlp_patch_from_longer_source_uses_batch_and_sequence_view():
    model, _ = model_for("opt")
    module = model.model.decoder.layers[1].fc2
    base, source = _ids(2, 5, 31), _ids(2, 8, 32)
    src = captured(model, module, "output", source)
    assert src.shape == (2 * 8, model.config.hidden_size)  # token-flattened in HF
    src = src.view(2, 8, -1)

    def edit(x):
        v = x.view(2, 5, -1)
        v[0, 1], v[1, 4] = src[0, 7], src[1, 0]
        return x

    expected = _patched(model, module, "output", base, edit)
    pvm = pv.IntervenableModel({"layer": 1, "component": "mlp_output"}, model)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": ([[[7], [0]]], [[[1], [4]]])})
    torch.testing.assert_close(out_tensor(out), expected, rtol=1e-5, atol=1e-5)


def test_opt_mlp_steering_during_generation_matches_no_cache_loop():
    """Every forward call, prompt and each cached decoding step (S = 1), adds ``vec`` to the
    new tokens' fc2 output; the reference recomputes the whole sequence without a cache."""
    model, _ = model_for("opt")
    model.generation_config.eos_token_id = None
    base = _ids(2, 5, 41)
    vec = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 4
    fc2 = model.model.decoder.layers[1].fc2
    seq = base["input_ids"]
    for _ in range(4):

        def edit(x, n=seq.shape[1]):
            x.view(2, n, -1)[:, 5:] += vec  # generated tokens only (the default gating)
            return x

        logits = _patched(model, fc2, "output", {"input_ids": seq, "use_cache": False}, edit)
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], 1)
    pvm = pv.IntervenableModel({"layer": 1, "component": "mlp_output", "intervention_type": pv.AdditionIntervention}, model)  # fmt: skip
    _, out = pvm.generate(base, source_representations=vec, max_new_tokens=4, do_sample=False)
    assert torch.equal(out, seq)
    assert not torch.equal(out, model.generate(**base, max_new_tokens=4, do_sample=False))


def test_opt_module_path_keeps_the_raw_flattened_tensor():
    model, _ = model_for("opt")
    base = _ids(2, 5, 51)
    raw = captured(model, model.model.decoder.layers[1].fc2, "output", base)
    pvm = pv.IntervenableModel({"component": "decoder.layers.1.fc2.output", "intervention_type": pv.CollectIntervention}, model)  # fmt: skip
    (_, got), _ = pvm(base)
    torch.testing.assert_close(got[0], raw.unsqueeze(1), rtol=0, atol=0)  # (B * S, 1, D)
    hook = pvm.describe()["interventions"][pvm.sorted_keys[0]]["hook"]
    assert hook == "output" and getattr(hook, "tokens_from", None) is None
    assert resolve_site(model, 1, "mlp_output").hook.tokens_from is model.model.decoder.layers[1]


# --------------------------------------------------------------------------- Mixtral
def test_mixtral_experts_whole_tensor_collect_and_zero_by_module_path():
    """No per-expert units (documented in the table's notes); the experts module's whole
    token-flattened output can still be collected and zeroed with no unit_locations."""
    model, _ = model_for("mixtral")
    experts = model.model.layers[1].mlp.experts
    base = _ids(2, 6, 61)
    raw = captured(model, experts, "output", base)
    assert raw.shape == (12, model.config.hidden_size)
    path = "layers.1.mlp.experts.output"
    pvm = pv.IntervenableModel({"component": path, "intervention_type": pv.CollectIntervention}, model)  # fmt: skip
    (_, got), _ = pvm(base)
    torch.testing.assert_close(got[0].squeeze(1), raw, rtol=0, atol=0)
    mlp_out = captured(model, model.model.layers[1].mlp, "output", base)
    torch.testing.assert_close(mlp_out, raw.view(2, 6, -1), rtol=0, atol=0)  # = mlp_output

    expected = _patched(model, experts, "output", base, torch.zeros_like)
    pvm = pv.IntervenableModel({"component": path, "intervention_type": pv.ZeroIntervention}, model)  # fmt: skip
    with torch.no_grad():
        _, out = pvm(base)
    torch.testing.assert_close(out_tensor(out), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(pv.UnknownComponentError, match="routed tokens"):
        pv.IntervenableModel({"layer": 1, "component": "expert_output"}, model)


def test_opt_skip_on_mlp_activation_reads_the_source_input_as_batch_and_sequence():
    """SkipIntervention reads the source run's *input* of activation_fn (fc1's output,
    token-flattened like the output) and writes it over the base output at the units."""
    model, _ = model_for("opt")
    act = model.model.decoder.layers[0].activation_fn
    base, source = _ids(2, 5, 41), _ids(2, 6, 42)
    src_in = captured(model, act, "input", source).view(2, 6, -1)

    def edit(x):
        v = x.view(2, 5, -1)
        v[0, 2], v[1, 0] = src_in[0, 5], src_in[1, 3]
        return x

    expected = _patched(model, act, "output", base, edit)
    rep = {"layer": 0, "component": "mlp_activation", "intervention_type": pv.SkipIntervention}
    pvm = pv.IntervenableModel(rep, model)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": ([[[5], [3]]], [[[2], [0]]])})
    torch.testing.assert_close(out_tensor(out), expected, rtol=1e-5, atol=1e-5)

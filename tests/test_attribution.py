"""Attribution patching on tiny models, against independent computations: exact where the
metric is linear in the patched activation, finite differences, per-cell IntervenableModel
runs, a brute-force GradDrop, and a saturated-attention case that plain AtP gets wrong."""

from __future__ import annotations

import pytest
import torch
from conftest import hooked, ids, make_gpt2, make_llama
from torch import nn

import pyvene as pv
from pyvene.analysis.attribution import attribution_patching
from pyvene.analysis.attribution_grad import grad_pass, site_info
from pyvene.errors import ConfigError


def metric7(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7] - logits[:, 3]


def metric70(logits: torch.Tensor) -> torch.Tensor:
    """100 x :func:`metric7`: tiny-model effects well above the 1e-5 tolerance."""
    return 100 * (logits[:, 7] - logits[:, 3])


def linear_tail(kind: str, zero_mlp: bool, sharpen: float = 1.0):
    """A tiny model whose last layer reaches the logits linearly: final norm removed, and
    with ``zero_mlp`` the last MLP's output weights zeroed (the attention output then reaches
    the logits linearly). ``sharpen`` scales the last layer's query/key weights."""
    model = make_gpt2(n_layer=2) if kind == "gpt2" else make_llama(n_layer=2)
    with torch.no_grad():
        if kind == "gpt2":
            model.transformer.ln_f = nn.Identity()
            last = model.transformer.h[-1]
            if zero_mlp:
                last.mlp.c_proj.weight.zero_()
                last.mlp.c_proj.bias.zero_()
            last.attn.c_attn.weight[:, : 2 * model.config.n_embd] *= sharpen
        else:
            model.model.norm = nn.Identity()
            last = model.model.layers[-1]
            if zero_mlp:
                last.mlp.down_proj.weight.zero_()
            last.self_attn.q_proj.weight *= sharpen
            last.self_attn.k_proj.weight *= sharpen
    return model


QK_COMPONENTS = ["head_query_output", "head_key_output", "query_output", "key_output"]


def assert_qk_fix_exact(model, per_position):
    """AtP* with the QK fix equals every single query / key patch (the rest of the path is
    linear), also with one source row for both base rows; plain AtP misses by > 20%. Returns
    the fixed estimate's result (its verification holds the exact values)."""
    comps = QK_COMPONENTS
    fixed, res = grid_errors(model, comps, per_position, method="atp*", grad_drop=False)
    assert max(fixed.values()) < 1e-5, fixed
    one, _ = grid_errors(model, comps[:2], per_position, 1, method="atp*", grad_drop=False)
    assert max(one.values()) < 1e-5, one  # one source row for both base rows
    plain, _ = grid_errors(model, comps, per_position, method="atp")
    scale = max(res.verification[c].exact.abs().max().item() for c in comps)
    assert max(plain.values()) > 0.2 * scale, (plain, scale)  # linearising the softmax fails
    return res


def grid_errors(model, comps, per_position=None, source_rows=2, **kwargs):
    base, source = ids(2, 6, seed=1), ids(source_rows, 6, seed=2)
    res = attribution_patching(
        model, base, source, metric70, comps, layers=[1], per_position=per_position,
        verify="grid", progress=False, **kwargs,
    )  # fmt: skip
    out = {}
    for comp in [comps] if isinstance(comps, str) else comps:
        ver = res.verification[comp]
        assert ver.exact.abs().max() > 1e-3, comp  # the patches do something
        out[comp] = (ver.estimate - ver.exact).abs().max().item()
    return out, res


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_atp_is_exact_when_linear(kind):
    model = linear_tail(kind, zero_mlp=False)
    errs, _ = grid_errors(model, ["block_output", "mlp_output", "mlp_activation"])
    assert max(errs.values()) < 1e-5, errs
    model = linear_tail(kind, zero_mlp=True)
    comps = ["attention_output", "head_attention_value_output", "value_output",
             "head_value_output"]  # fmt: skip
    errs, _ = grid_errors(model, comps)
    assert max(errs.values()) < 1e-5, errs
    errs, _ = grid_errors(model, ["head_attention_value_output"], per_position=True)
    assert max(errs.values()) < 1e-5, errs
    errs, _ = grid_errors(model, ["value_output"], source_rows=1)  # one source, two bases
    assert max(errs.values()) < 1e-5, errs


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("per_position", [True, False])
def test_qk_fix_is_exact_and_fixes_saturation(kind, per_position):
    """Queries/keys of a sharply saturated last layer: the QK fix equals the exact effect of
    each single query or key patch (the rest of the path is linear); plain AtP does not."""
    model = linear_tail(kind, zero_mlp=True, sharpen=30.0)
    assert_qk_fix_exact(model, per_position)


def test_gradient_matches_finite_differences():
    model = make_llama(n_layer=2).double()
    base = ids(1, 5, seed=3)
    info = site_info(model, "mlp_output", 0)
    gp = grad_pass(model, base, metric7, {info.key: info.site})
    grad = gp.grads[info.key]
    direction = torch.randn(grad.shape, generator=torch.Generator().manual_seed(0)).double()
    eps = 1e-4  # the model keeps some float32 parts (rotary tables): no smaller step

    def value(shift: float) -> float:
        handle = hooked(info.site.module, "output", lambda t: t + shift * direction)
        try:
            with torch.no_grad():
                return metric7(model(**base).logits[:, -1]).item()
        finally:
            handle.remove()

    numeric = (value(eps) - value(-eps)) / (2 * eps)
    assert (grad * direction).sum().item() == pytest.approx(numeric, rel=2e-5)
    assert all(not p.requires_grad or p.grad is None for p in model.parameters())


def reference(model, base, source, comp, layer, positions, head) -> float:
    """One IntervenableModel run per cell: the exact effect the attribution estimates."""
    unit = "h.pos" if head is not None else "pos"
    rep = pv.RepresentationConfig(layer=layer, component=comp, unit=unit,
                                  max_number_of_units=len(positions),
                                  intervention_type=pv.VanillaIntervention)  # fmt: skip
    pvm = pv.IntervenableModel(pv.IntervenableConfig(representations=[rep]), model)
    batch = base["input_ids"].shape[0]
    src = {k: v.expand(batch, -1) for k, v in source.items()}
    loc = [[[head]] * batch, [list(positions)] * batch] if head is not None else [
        list(positions)] * batch  # fmt: skip
    _, out = pvm(base, sources=[src], unit_locations={"sources->base": ([loc], [loc])})
    with torch.no_grad():
        plain = metric7(model(**base).logits[:, -1]).mean()
    return (metric7(out.logits[:, -1]).mean() - plain).item()


def neuron_reference(model, base, source, comp, layer, position, neuron) -> float:
    """A neuron cell with plain torch hooks: read the source, write it into the base."""
    site = site_info(model, comp, layer).site
    kept = {}
    handle = hooked(site.module, site.hook, lambda t: kept.__setitem__("a", t.clone()))
    with torch.no_grad():
        model(**source)
    handle.remove()

    def put(t):
        t = t.clone()
        t[:, position, neuron] = kept["a"][:, position, neuron]
        return t

    handle = hooked(site.module, site.hook, put)
    with torch.no_grad():
        patched = metric7(model(**base).logits[:, -1]).mean()
    handle.remove()
    with torch.no_grad():
        return (patched - metric7(model(**base).logits[:, -1]).mean()).item()


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_verified_cells_equal_per_cell_runs(kind):
    model = make_gpt2(n_layer=3) if kind == "gpt2" else make_llama(n_layer=3)
    base, source = ids(1, 6, seed=4), ids(1, 6, seed=5)
    comps = ["head_attention_value_output", "attention_output", "mlp_activation",
             "head_key_output"]  # fmt: skip
    res = attribution_patching(model, base, source, metric7, comps, per_position=True,
                               method="atp*", verify=3, progress=False)  # fmt: skip
    assert tuple(res["head_attention_value_output"].shape) == (3, 4, 6)
    assert tuple(res["attention_output"].shape) == (3, 6)
    width = 96 if kind == "gpt2" else 48  # 4 * 24 (GPT-2 n_embd) or the llama intermediate size
    assert tuple(res["mlp_activation"].shape) == (3, width, 6)
    for comp in comps:
        ver = res.verification[comp]
        assert len(ver.cells) == 3
        assert torch.isfinite(res.exact[comp]).sum() == 3
        for idx, exact in zip(ver.cells, ver.exact):
            layer, pos = res.layers[idx[0]], res.positions[idx[-1]]
            if comp == "mlp_activation":
                want = neuron_reference(model, base, source, comp, layer, pos, idx[1])
            else:
                head = res.units[comp][idx[1]] if res.units[comp] is not None else None
                want = reference(model, base, source, comp, layer, (pos,), head)
            assert exact.item() == pytest.approx(want, abs=1e-5), (comp, idx)
        # the verified cells are the ones with the largest |estimate|
        top = res[comp].abs().flatten().topk(3).values
        torch.testing.assert_close(ver.estimate.abs(), top)


def test_graddrop_equals_brute_force():
    """GradDrop against L separate backward passes, each with one layer's residual
    contribution detached by a plain hook: sum of |estimates| / (L - 1), signed by the sum."""
    model = make_llama(n_layer=3)
    base, source = ids(1, 5, seed=6), ids(1, 5, seed=7)
    comps = ["block_output", "mlp_output", "head_attention_value_output"]
    res = attribution_patching(model, base, source, metric7, comps, method="atp*",
                               qk_fix=False, progress=False)  # fmt: skip
    layers = model.model.layers
    for comp in comps:
        want = torch.zeros_like(res[comp])
        signed = torch.zeros_like(res[comp])
        for drop in range(3):
            got = attribution_with_drop(model, base, source, comp, drop)
            want += got.abs()
            signed += got
        torch.testing.assert_close(res[comp], torch.sign(signed) * want / 2, atol=1e-5, rtol=1e-4)
    assert len(layers) == 3


def attribution_with_drop(model, base, source, comp, drop):
    """Plain AtP with ``out = in + (out - in).detach()`` at layer ``drop`` (plain hooks)."""
    layer = model.model.layers[drop]
    saved = {}
    h1 = layer.register_forward_pre_hook(
        lambda m, a, k: saved.__setitem__("in", (a or [k["hidden_states"]])[0]) or None,
        with_kwargs=True,
    )  # noqa: E501
    h2 = hooked(layer, "output", lambda t: saved["in"] + (t - saved["in"]).detach())
    try:
        res = attribution_patching(model, base, source, metric7, comp, progress=False)
    finally:
        h1.remove()
        h2.remove()
    return res[comp]


def test_bad_method_and_verify():
    model = make_gpt2(n_layer=2)
    base, source = ids(1, 4, seed=1), ids(1, 4, seed=2)
    with pytest.raises(ConfigError, match="atp"):
        attribution_patching(model, base, source, metric7, method="apt", progress=False)
    with pytest.raises(ConfigError, match="heads \\[4\\] out of range"):
        attribution_patching(model, base, source, metric7, "head_attention_value_output",
                             heads=[0, 4], progress=False)  # fmt: skip
    with pytest.raises(ConfigError, match="verify"):
        attribution_patching(model, base, source, metric7, verify=0, progress=False)


def test_exact_effects_take_plain_id_tensors():
    """Regression: ids passed as tensors (not dicts) work for neuron and head cells."""
    from pyvene.analysis.attribution_verify import CellSpec, exact_effects

    model = make_llama(n_layer=2)
    base, source = ids(1, 5, seed=8), ids(1, 5, seed=9)
    specs = [CellSpec("mlp_activation", 1, 3, (4,), True),
             CellSpec("head_attention_value_output", 1, 2, (4,))]  # fmt: skip
    want = exact_effects(model, base, source, metric7, specs)
    got = exact_effects(model, base["input_ids"], source["input_ids"], metric7, specs)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert want.abs().min() > 0


@pytest.mark.parametrize("source_rows", [1, 2])
def test_joined_pass_equals_separate_passes(source_rows):
    """Source rows riding in the base forward: the same base activations and gradients (also
    GradDrop's), source activations and metric values as a separate no-grad source run."""
    from pyvene.analysis.attribution_grad import collect

    model = make_llama(n_layer=3)
    base, source = ids(2, 6, seed=1), ids(source_rows, 6, seed=2)
    infos = [site_info(model, c, ly) for c in ("mlp_output", "block_output") for ly in (0, 2)]
    sites = {i.key: i.site for i in infos}
    attn = {1: model.model.layers[1].self_attn}
    alone = grad_pass(model, base, metric7, sites, attention_calls=attn, drop_layers=3)
    src, logits = collect(model, source, sites)
    joined = grad_pass(model, base, metric7, sites, source=source, attention_calls=attn,
                       drop_layers=3)  # fmt: skip
    keys = sorted(sites)
    for k in keys:
        torch.testing.assert_close(joined.acts[k], alone.acts[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(joined.grads[k], alone.grads[k], rtol=0, atol=1e-6)
        torch.testing.assert_close(joined.src[k], src[k], rtol=0, atol=1e-6)
    torch.testing.assert_close(joined.src_rows, metric7(logits), rtol=0, atol=1e-5)
    torch.testing.assert_close(joined.rows, alone.rows, rtol=0, atol=1e-5)
    hidden = joined.calls[1][1]["hidden_states"]
    torch.testing.assert_close(hidden, alone.calls[1][1]["hidden_states"], rtol=0, atol=1e-6)
    got, want = joined.dropped_all(keys, 2), alone.dropped_all(keys, 2)
    for k in keys:
        assert got[k].shape == want[k].shape == (3, *alone.acts[k].shape)
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=1e-6)
    assert alone.src is None
    masked = {**source, "attention_mask": torch.ones_like(source["input_ids"])}
    assert grad_pass(model, base, metric7, sites, source=masked).src is None  # keys differ
    shared = {"position_ids": torch.arange(6)[None]}  # (1, seq) for every row: not batch-first
    got = grad_pass(model, {**base, **shared}, metric7, sites, source={**source, **shared})
    assert got.src is None
    for k in keys:
        torch.testing.assert_close(got.grads[k], alone.grads[k], rtol=0, atol=1e-6)

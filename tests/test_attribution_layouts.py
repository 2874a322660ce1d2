"""Attribution patching beyond plain single-device decoders: models dispatched by accelerate
(cpu_offload, disk offload: every weight on ``meta``, streamed in by hooks) give the plain
model's estimates and verified values; GPT-NeoX's per-head interleaved QKV (Q, K, V of a head
adjacent in one fused output) gets exact per-head query / key (QK fix) and attention / value
estimates where the rest of the path is linear, with verified values checked against plain
torch hooks that patch the hand-reshaped fused tensor."""

from __future__ import annotations

import pytest
import torch
from conftest import hooked, ids, make_llama, offloaded_llama
from test_attribution import QK_COMPONENTS, assert_qk_fix_exact, grid_errors, metric70
from torch import nn
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from pyvene.analysis.attribution import attribution_patching

COMPS = ["block_output", "mlp_activation", "head_attention_value_output", "head_query_output",
         "head_key_output", "attention_output"]  # fmt: skip


# --------------------------------------------------------------------------- offloaded models


@pytest.mark.parametrize("kind", ["cpu", "disk"])
@pytest.mark.parametrize("method", ["atp", "atp*"])
def test_offloaded_model_gives_the_plain_estimates_and_verified_values(kind, method, tmp_path):
    plain, off = make_llama(seed=11), offloaded_llama(kind, tmp_path)
    flags = [p.requires_grad for p in off.parameters()]
    base, source = ids(2, 6, seed=1), ids(2, 6, seed=2)
    got = [
        attribution_patching(
            model, base, source, metric70, COMPS, method=method, verify=4, progress=False
        )  # fmt: skip
        for model in (plain, off)
    ]
    want, res = got
    for comp in COMPS:
        torch.testing.assert_close(res[comp], want[comp], rtol=0, atol=1e-6)
        torch.testing.assert_close(res.exact[comp], want.exact[comp], rtol=0, atol=1e-6,
                                   equal_nan=True)  # fmt: skip
        assert torch.isfinite(res.exact[comp]).sum() == 4
        assert res.exact[comp].nan_to_num().abs().max() > 1e-3, comp  # the patches do something
    assert res.base_value == want.base_value and res.source_value == want.source_value
    assert all(p.device.type == "meta" for p in off.parameters())  # still dispatched
    # restored by name: the offload hooks swap the parameter objects at every forward
    assert [p.requires_grad for p in off.parameters()] == flags and all(flags)
    assert all(p.grad is None for p in off.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in off.modules())


# --------------------------------------------------------------------------- GPT-NeoX
def make_neox(sharpen: float = 1.0) -> GPTNeoXForCausalLM:
    """Tiny GPT-NeoX (parallel residual, partial rotary) whose last layer reaches the logits
    linearly: final norm removed (its MLP reads the layer input, not the attention output).
    ``sharpen`` scales the last layer's query and key rows of the fused (H, 3, Dh) output."""
    torch.manual_seed(0)
    cfg = GPTNeoXConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, vocab_size=60, max_position_embeddings=64)  # fmt: skip
    cfg._attn_implementation = "eager"
    model = GPTNeoXForCausalLM(cfg).eval()
    model.gpt_neox.final_layer_norm = nn.Identity()
    qkv = model.gpt_neox.layers[-1].attention.query_key_value
    with torch.no_grad():
        w = qkv.weight.view(4, 3, 8, 32)  # (heads, Q|K|V, head_dim, in): a view, edited in place
        b = qkv.bias.view(4, 3, 8)
        w[:, :2] *= sharpen
        b[:, :2] *= sharpen
    return model


def neox_reference(model, base, source, comp, layer, position, head) -> float:
    """One query or key head at one position (all positions: ``position`` None) of the fused
    output, copied from the source run with plain torch hooks; the mean effect on metric70."""
    part = {"head_query_output": 0, "head_key_output": 1, "head_value_output": 2}[comp]
    module = model.gpt_neox.layers[layer].attention.query_key_value
    kept = {}
    handle = hooked(module, "output", lambda t: kept.__setitem__("a", t.clone()))
    with torch.no_grad():
        model(**source)
    handle.remove()
    where = slice(None) if position is None else position

    def put(t):
        t = t.clone()
        view = t.view(*t.shape[:2], 4, 3, 8)  # (B, T, heads, Q|K|V, head_dim)
        src = kept["a"].expand(t.shape[0], -1, -1).reshape(view.shape)
        view[:, where, head, part] = src[:, where, head, part]
        return t

    handle = hooked(module, "output", put)
    with torch.no_grad():
        patched = metric70(model(**base).logits[:, -1]).mean()
    handle.remove()
    with torch.no_grad():
        return (patched - metric70(model(**base).logits[:, -1]).mean()).item()


@pytest.mark.parametrize("per_position", [True, False])
def test_neox_query_key_heads_with_the_qk_fix_equal_single_patches(per_position):
    model = make_neox(sharpen=30.0)
    res = assert_qk_fix_exact(model, per_position)
    comps = QK_COMPONENTS
    base, source = ids(2, 6, seed=1), ids(2, 6, seed=2)
    for comp in comps[:2]:  # the verified values against hand-reshaped torch hooks
        ver = res.verification[comp]
        for idx, exact in list(zip(ver.cells, ver.exact))[:6]:
            pos = res.positions[idx[2]] if per_position else None
            want = neox_reference(model, base, source, comp, 1, pos, res.units[comp][idx[1]])
            assert exact.item() == pytest.approx(want, abs=1e-5), (comp, idx)


def test_neox_attention_and_value_heads_are_exact_when_linear():
    model = make_neox()
    comps = ["head_attention_value_output", "attention_output", "head_value_output",
             "value_output", "attention_value_output"]  # fmt: skip
    errs, res = grid_errors(model, comps)
    assert max(errs.values()) < 1e-5, errs
    errs, _ = grid_errors(model, ["head_value_output"], per_position=True, source_rows=1)
    assert max(errs.values()) < 1e-5, errs
    base, source = ids(2, 6, seed=1), ids(2, 6, seed=2)
    ver = res.verification["head_value_output"]
    for idx, exact in list(zip(ver.cells, ver.exact))[:4]:
        head = res.units["head_value_output"][idx[1]]
        want = neox_reference(model, base, source, "head_value_output", 1, None, head)
        assert exact.item() == pytest.approx(want, abs=1e-5), idx

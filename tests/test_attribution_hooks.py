"""The session hooks attribution's gradient pass relies on: ``HookSession.on_pre_forward``
(whole-call arguments, through the thread-scoped dispatcher) against plain torch pre-hooks,
removed after a raising forward, and invisible to another thread's plain call."""

from __future__ import annotations

import threading

import pytest
import torch
from conftest import ids, make_llama

from pyvene.analysis.attribution_grad import grad_pass, site_info
from pyvene.hooks import HookSession


def no_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_on_pre_forward_sees_and_replaces_the_call_like_a_torch_pre_hook():
    model = make_llama(n_layer=2)
    attn = model.model.layers[1].self_attn
    x = ids(2, 5, 1)
    plain: list = []

    def torch_hook(mod, args, kwargs):
        plain.append((args, dict(kwargs)))
        return args, {**kwargs, "hidden_states": torch.zeros_like(kwargs["hidden_states"])}

    handle = attn.register_forward_pre_hook(torch_hook, with_kwargs=True)
    try:
        with torch.no_grad():
            want = model(**x).logits
    finally:
        handle.remove()
    seen: list = []

    def zero(args, kwargs):
        seen.append((args, dict(kwargs)))
        return args, {**kwargs, "hidden_states": torch.zeros_like(kwargs["hidden_states"])}

    with torch.no_grad(), HookSession() as session:
        session.on_pre_forward(attn, zero)
        got = model(**x).logits
    assert no_hooks(model)
    assert torch.equal(got, want)
    with torch.no_grad():
        assert not torch.equal(got, model(**x).logits)  # the replacement did something
    assert len(seen) == len(plain) == 1
    assert seen[0][0] == plain[0][0] and seen[0][1].keys() == plain[0][1].keys()
    assert torch.equal(seen[0][1]["hidden_states"], plain[0][1]["hidden_states"])


def test_grad_pass_hooks_are_removed_after_a_raising_forward():
    model = make_llama(n_layer=2)
    info = site_info(model, "mlp_output", 0)
    attn = {1: model.model.layers[1].self_attn}

    def broken(logits):
        raise RuntimeError("metric failed")

    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="metric failed"):
        grad_pass(model, ids(1, 5, 2), broken, {info.key: info.site}, attention_calls=attn,
                  drop_layers=2)  # fmt: skip
    assert no_hooks(model)
    assert [p.requires_grad for p in model.parameters()] == flags


def test_another_threads_plain_call_is_untouched_during_the_grad_pass():
    """A plain call from another thread while the pass's hooks are installed (inside the
    metric, after the forward) runs none of them and gives the plain logits."""
    model = make_llama(n_layer=2)
    base, other_in = ids(1, 5, 3), ids(3, 7, 4)
    info = site_info(model, "mlp_output", 0)
    attn = {1: model.model.layers[1].self_attn}
    with torch.no_grad():
        want_other = model(**other_in).logits
    other_out: list[torch.Tensor] = []

    def other() -> None:
        with torch.no_grad():
            other_out.append(model(**other_in).logits)

    def metric(logits):
        assert model.model.layers[1].self_attn._forward_pre_hooks  # installed right now
        t = threading.Thread(target=other)
        t.start()
        t.join()
        return logits[:, 7] - logits[:, 3]

    quiet = grad_pass(model, base, lambda t: t[:, 7] - t[:, 3], {info.key: info.site},
                      attention_calls=attn)  # fmt: skip
    busy = grad_pass(model, base, metric, {info.key: info.site}, attention_calls=attn)
    assert no_hooks(model)
    assert torch.equal(other_out[0], want_other)
    assert busy.calls[1][1]["hidden_states"].shape[:2] == (1, 5)  # the base call, not (3, 7)
    assert torch.equal(busy.grads[info.key], quiet.grads[info.key])
    assert busy.grads[info.key].shape[:2] == (1, 5)

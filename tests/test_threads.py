"""Hooks act only for the thread (and call) that installed them: concurrent intervened calls on
ONE model from several threads, with plain ``model(...)`` calls in between, equal serial calls."""

from __future__ import annotations

import threading

import torch
from conftest import hooked, ids, make_gpt2

import pyvene as pv
from pyvene.hooks import HookSession, open_sessions

CALLS = 200


def _zero_block(model):
    config = {"layer": 1, "component": "block_output", "intervention_type": pv.ZeroIntervention}
    return pv.IntervenableModel(config, model)


def _patch_mlp(model):
    return pv.IntervenableModel({"layer": 0, "component": "mlp_output"}, model)


def test_concurrent_calls_equal_serial_calls():
    model = make_gpt2(seed=3)
    zero, patch = _zero_block(model), _patch_mlp(model)
    bases = [ids(2, 6, s) for s in range(4)]
    source = ids(2, 6, 99)
    loc = {"sources->base": ([[[1, 3], [2, 4]]], [[[2, 5], [0, 1]]])}  # per example
    with torch.no_grad():
        # serial results; the Zero one also against a plain torch hook on the block
        want_zero = [zero(b)[1].logits for b in bases]
        want_patch = [patch(b, [source], loc)[1].logits for b in bases]
        want_plain = [model(**b).logits for b in bases]
        handle = hooked(model.transformer.h[1], "output", torch.zeros_like)
        try:
            assert torch.equal(want_zero[0], model(**bases[0]).logits)
        finally:
            handle.remove()
    assert not torch.equal(want_zero[0], want_plain[0])
    assert not torch.equal(want_patch[0], want_plain[0])

    wrong: dict[str, int] = {"zero": 0, "patch": 0, "plain": 0}
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker(name, fn, want):
        try:
            start.wait()
            with torch.no_grad():
                for i in range(CALLS):
                    k = i % len(bases)
                    if not torch.equal(fn(bases[k]), want[k]):
                        wrong[name] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    jobs = {
        "zero": (lambda b: zero(b)[1].logits, want_zero),
        "patch": (lambda b: patch(b, [source], loc)[1].logits, want_patch),
        "plain": (lambda b: model(**b).logits, want_plain),
    }
    threads = [threading.Thread(target=worker, args=(n, *jobs[n])) for n in jobs]
    threads.append(threading.Thread(target=worker, args=("plain", *jobs["plain"])))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert wrong == {"zero": 0, "patch": 0, "plain": 0}
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_session_is_invisible_to_other_threads():
    """A session open in one thread does not fire for another thread's forward."""
    model = make_gpt2(seed=4)
    block = model.transformer.h[0]
    base = ids(1, 5, 0)
    seen_main: list[int] = []
    ran_other = threading.Event()
    other_out: list[torch.Tensor] = []

    def other():
        with torch.no_grad():
            other_out.append(model(**base).logits)
        ran_other.set()

    with torch.no_grad():
        want = model(**base).logits
        with HookSession() as session:
            session.on_output(block, lambda t: seen_main.append(1) or torch.zeros_like(t))
            assert open_sessions() == (session,)
            t = threading.Thread(target=other)
            t.start()
            t.join()
            zeroed = model(**base).logits
        assert open_sessions() == ()
    assert ran_other.is_set() and torch.equal(other_out[0], want)
    assert seen_main == [1] and not torch.equal(zeroed, want)


def test_nested_sessions_run_in_entry_order_and_release_hooks():
    model = make_gpt2(seed=5)
    mlp = model.transformer.h[0].mlp
    x = ids(1, 4, 1)
    order: list[str] = []
    with torch.no_grad():
        with HookSession() as outer:
            outer.on_output(mlp, lambda t: order.append("outer") or t * 2)
            with HookSession() as inner:
                inner.on_output(mlp, lambda t: order.append("inner") or t + 1)
                got = model(**x).logits
            assert len(mlp._forward_hooks) == 1  # one shared dispatcher
        handle = hooked(mlp, "output", lambda t: t * 2 + 1)
        try:
            want = model(**x).logits
        finally:
            handle.remove()
    assert order == ["outer", "inner"]
    assert torch.equal(got, want)
    assert not mlp._forward_hooks

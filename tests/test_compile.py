"""torch.compile: intervened calls and generate on a compiled model give the eager results and
do not recompile once warm (stable dispatcher hooks; per-call objects live outside the graph).
The counter is dynamo's own count of frames it compiled (every recompile adds one)."""

from __future__ import annotations

import pytest
import torch
from conftest import hooked, ids, make_llama

import pyvene as pv

dynamo = pytest.importorskip("torch._dynamo")
from torch._dynamo.utils import counters  # noqa: E402


def compiled_frames() -> int:
    return int(counters["frames"]["total"])


@pytest.fixture()
def fresh_dynamo():
    dynamo.reset()
    counters.clear()
    yield
    dynamo.reset()


def _steer(model):
    rep = {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention}
    return pv.IntervenableModel(rep, model)


def _eager(model, base, vector=None):
    """The plain model (dynamo off) with a plain torch hook adding ``vector`` at layer 1."""
    with dynamo.config.patch(disable=True), torch.no_grad():
        if vector is None:
            return model(**base).logits
        handle = hooked(model.model.layers[1], "output", lambda t: t + vector)
        try:
            return model(**base).logits
        finally:
            handle.remove()


def test_repeated_intervened_calls_do_not_recompile(fresh_dynamo):
    model = make_llama(seed=1, n_layer=2)
    compiled = torch.compile(model, backend="eager")  # generate's test compiles in place
    pvm = _steer(compiled)
    base = ids(2, 5, 0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        # a plain compiled call first: the graph it compiles must still let later calls intervene
        assert torch.equal(compiled(**base).logits, _eager(model, base))
        for _ in range(2):  # warm-up
            pvm(base, source_representations=torch.randn(32, generator=g))
        warm = compiled_frames()
        assert warm > 0
        for _ in range(20):
            vector = torch.randn(32, generator=g)
            got = pvm(base, source_representations=vector)[1].logits
            torch.testing.assert_close(got, _eager(model, base, vector), rtol=0, atol=1e-6)
            plain = compiled(**base).logits  # plain calls in between stay untouched
            torch.testing.assert_close(plain, _eager(model, base), rtol=0, atol=1e-6)
    assert compiled_frames() == warm


def test_generate_on_compiled_model_does_not_recompile_per_step(fresh_dynamo):
    model = make_llama(seed=2, n_layer=2)
    eager_pvm = _steer(model)
    model.compile(backend="eager")  # in place: HF generate calls the compiled module
    pvm = _steer(model)
    prompt = ids(1, 4, 3)
    greedy = {"max_new_tokens": 16, "min_new_tokens": 16, "do_sample": False, "pad_token_id": 0}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        pvm.generate(prompt, source_representations=torch.randn(32, generator=g),
                     intervene_on_prompt=True, **greedy)  # fmt: skip
        warm = compiled_frames()
        vector = torch.randn(32, generator=g) * 3
        _, out = pvm.generate(
            prompt, source_representations=vector, intervene_on_prompt=True, **greedy
        )
        assert compiled_frames() == warm
        with dynamo.config.patch(disable=True):
            _, want = eager_pvm.generate(
                prompt, source_representations=vector, intervene_on_prompt=True, **greedy
            )
            handle = hooked(model.model.layers[1], "output", lambda t: t + vector)
            try:
                plain_hook = model.generate(**prompt, **greedy)
            finally:
                handle.remove()
    assert out.shape == (1, 4 + 16)
    assert torch.equal(out, want) and torch.equal(out, plain_hook)


def _compiled(model, how, backend):
    """``model`` compiled in place, wrapped by ``torch.compile``, or only its layer 0 compiled
    in place; returns (what the user calls, what the user wraps)."""
    if how == "in_place":
        model.compile(backend=backend)
        return model, model
    if how == "layer":
        model.model.layers[0].compile(backend=backend)
        return model, model
    compiled = torch.compile(model, backend=backend)
    return compiled, (compiled if how == "wrapper" else model)


@pytest.mark.parametrize("backend", ["eager", pytest.param("inductor", marks=pytest.mark.slow)])
@pytest.mark.parametrize("how", ["in_place", "wrapper", "layer", "original_of_wrapper"])
def test_model_compiled_and_run_before_wrapping_intervenes(fresh_dynamo, how, backend):
    """Frozen weights: wrapping changes nothing dynamo guards on, so before the fix the graph
    compiled by the first plain call ran on without the dispatchers (interventions ignored)."""
    ref = make_llama(seed=3, n_layer=2)  # never compiled: the reference
    model = make_llama(seed=3, n_layer=2).requires_grad_(False)
    call, wrapped = _compiled(model, how, backend)
    base = ids(2, 5, 4)
    g = torch.Generator().manual_seed(2)
    tol = {"rtol": 0, "atol": 1e-5}
    with torch.no_grad():
        torch.testing.assert_close(call(**base).logits, _eager(ref, base), **tol)
        before = compiled_frames()
        assert before > 0
        pvm = _steer(wrapped)
        for _ in range(2):  # warm-up: the graphs are traced again, with the dispatchers
            pvm(base, source_representations=torch.randn(32, generator=g))
        warm = compiled_frames()
        for _ in range(4):
            vector = torch.randn(32, generator=g)
            got = pvm(base, source_representations=vector)[1].logits
            torch.testing.assert_close(got, _eager(ref, base, vector), **tol)
            torch.testing.assert_close(call(**base).logits, _eager(ref, base), **tol)
        # a second wrapper on a new site of the now-warm model intervenes too
        rep = {"layer": 0, "component": "mlp_output", "intervention_type": pv.ZeroIntervention}
        zero = pv.IntervenableModel(rep, wrapped)
        handle = hooked(ref.model.layers[0].mlp, "output", torch.zeros_like)
        try:
            want = _eager(ref, base)
        finally:
            handle.remove()
        for _ in range(2):
            torch.testing.assert_close(zero(base)[1].logits, want, **tol)
        again = compiled_frames()
        for _ in range(3):
            zero(base)
            pvm(base, source_representations=vector)
    assert compiled_frames() == again  # warm again: no recompiles per call
    if how == "original_of_wrapper":  # the wrapper is never called by pvm: nothing recompiles
        assert warm == before
    else:
        assert warm > before


def test_model_compiled_in_place_after_wrapping_and_run_intervenes(fresh_dynamo):
    """Wrapped first, then ``model.compile()`` and a plain call (a graph without the
    dispatchers): the next intervened call notices the compiled model and intervenes."""
    ref = make_llama(seed=4, n_layer=2)
    model = make_llama(seed=4, n_layer=2).requires_grad_(False)
    pvm = _steer(model)
    model.compile(backend="eager")
    base, vector = ids(2, 5, 6), torch.randn(32, generator=torch.Generator().manual_seed(3))
    tol = {"rtol": 0, "atol": 1e-5}
    with torch.no_grad():
        torch.testing.assert_close(model(**base).logits, _eager(ref, base), **tol)
        for _ in range(2):
            got = pvm(base, source_representations=vector)[1].logits
        warm = compiled_frames()
        for _ in range(3):
            got = pvm(base, source_representations=vector)[1].logits
            torch.testing.assert_close(got, _eager(ref, base, vector), **tol)
            torch.testing.assert_close(model(**base).logits, _eager(ref, base), **tol)
    assert compiled_frames() == warm

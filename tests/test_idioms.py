"""Warnings at the caller's line for idioms that run but cannot do what the user meant: a
flat causal trace, training on source == base, a hub repo id given to a local save. Each
test also checks, independently, that the idiom really is the no-op the warning claims."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import ids

import pyvene as pv


def caught(fn) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        fn()
    return [w for w in got if issubclass(w.category, UserWarning)]


def trace_config(layer: int) -> list[dict]:
    return [
        {"layer": 0, "component": "block_input", "intervention": pv.NoiseIntervention(1.0)},
        {"layer": layer, "component": "block_output", "intervention_type": pv.VanillaIntervention},
    ]  # fmt: skip


def test_restoring_every_position_under_noise_is_flat_and_warns(gpt2):
    base, clean = ids(1, 5, 0), ids(1, 5, 0)
    want = gpt2(**clean).logits
    for layer in range(3):
        pvm = pv.IntervenableModel(trace_config(layer), gpt2)
        out: list = []
        got = caught(lambda: out.append(pvm(base, [clean])[1].logits))  # noqa: B023
        torch.testing.assert_close(out[0], want)  # the clean output at every layer: flat
        flat = [w for w in got if "trace is flat" in str(w.message)]
        assert len(flat) == 1 and flat[0].filename == __file__
        assert "block_output" in str(flat[0].message) and "unit_locations" in str(flat[0].message)


def test_restoring_one_position_under_noise_does_not_warn(gpt2):
    pvm = pv.IntervenableModel(trace_config(1), gpt2)
    base, clean = ids(1, 5, 0), ids(1, 5, 0)
    locations = {"sources->base": ([None, [[2]]], [None, [[2]]])}
    out: list = []
    got = caught(lambda: out.append(pvm(base, [clean], locations)[1].logits))
    assert not [w for w in got if "flat" in str(w.message)]
    assert not torch.allclose(out[0], gpt2(**clean).logits, atol=1e-4)  # not the clean run


def das(model) -> pv.IntervenableModel:
    return pv.IntervenableModel(
        {"layer": 1, "component": "block_output",
         "intervention_type": pv.LowRankRotatedSpaceIntervention, "low_rank_dimension": 2},
        model,
    )  # fmt: skip


def grad_norm(pvm, base, source, locations) -> tuple[float, list]:
    pvm.zero_grad()
    got: list = []

    def step():
        out = pvm(base, [source], locations)[1].logits
        out[:, -1].logsumexp(-1).sum().backward()

    got = caught(step)
    grads = [p.grad for p in pvm.get_trainable_parameters()]
    return float(sum(g.abs().sum() for g in grads if g is not None)), got


def test_training_on_source_equal_to_base_warns_and_has_zero_gradient(gpt2):
    pvm = das(gpt2)
    base = ids(2, 5, 0)
    locations = {"sources->base": 3}
    norm, got = grad_norm(pvm, base, ids(2, 5, 0), locations)
    assert norm == 0.0  # the identity: nothing to learn
    same = [w for w in got if "source equals the base" in str(w.message)]
    assert len(same) == 1 and same[0].filename == __file__
    assert "LowRankRotatedSpaceIntervention" in str(same[0].message)

    norm, got = grad_norm(pvm, base, ids(2, 5, 1), locations)  # counterfactual: learns
    assert norm > 0 and not [w for w in got if "source equals" in str(w.message)]
    norm, got = grad_norm(pvm, base, ids(2, 5, 0), {"sources->base": (2, 3)})  # other position
    assert norm > 0 and not [w for w in got if "source equals" in str(w.message)]
    with torch.no_grad():  # evaluation with source == base is a fine sanity check
        assert not caught(lambda: pvm(base, [ids(2, 5, 0)], locations))


@pytest.mark.parametrize("method", ["save_intervention", "save"])
def test_hub_looking_save_name_warns(gpt2, tmp_path, monkeypatch, method):
    monkeypatch.chdir(tmp_path)
    pvm = das(gpt2)
    got = caught(lambda: getattr(pvm, method)("someone/my-das"))
    hub = [w for w in got if "does not upload" in str(w.message)]
    assert len(hub) == 1 and hub[0].filename == __file__
    assert "save_to_hf_hub=True" in str(hub[0].message) and "push_to_hub" in str(hub[0].message)
    assert (tmp_path / "someone" / "my-das").is_dir()  # it did write locally, as documented
    # a plain folder name, or a path under an existing local folder, is not a hub id
    for name in ("plain_folder", "someone/second", "./x/y"):
        assert not [
            w for w in caught(lambda: getattr(pvm, method)(name)) if "upload" in str(w.message)
        ]  # noqa: B023,E501

"""Bad input that used to surface as a raw torch / Python error (IndexError, RuntimeError,
TypeError) now raises a PyveneError naming the bad value; builtin bases stay for ``except``.
Every case also checks that no hook is left on the model."""

from __future__ import annotations

import pytest
import torch
from conftest import VOCAB, first, ids

import pyvene as pv
from pyvene.analysis import TraceInputError, patching_sweep, token_probability


def hook_count(model) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.fixture(autouse=True)
def no_new_hooks(gpt2):
    """Every test here ends with exactly the hooks the model had before it (other libraries,
    e.g. transformers' output capturing, may own some)."""
    before = hook_count(gpt2)
    yield
    assert hook_count(gpt2) == before


def site(**kw) -> dict:
    return {"layer": 1, "component": "block_output", **kw}


def test_location_error_is_also_index_error():
    assert issubclass(pv.LocationError, IndexError) and issubclass(pv.LocationError, ValueError)


@pytest.mark.parametrize(
    "cls,kw,subspaces,match",
    [
        (pv.VanillaIntervention, {"subspace_partition": [[0, 4], [4, 8]]}, [[[5]]],
         r"subspaces index 5 is out of range.*2 \(0\.\.1\)"),
        (pv.VanillaIntervention, {"subspace_partition": [[0, 4], [4, 8]]}, [[[-3]]],
         "subspaces index -3"),
        (pv.RotatedSpaceIntervention, {"subspace_partition": [[0, 4], [4, 8]]}, [[[2]]],
         "subspaces index 2"),
        (pv.VanillaIntervention, {}, [[[50]]], r"subspaces dim 50 .*width 24 \(valid 0\.\.23\)"),
        (pv.VanillaIntervention, {}, [[[-25]]], "subspaces dim -25"),
        (pv.ZeroIntervention, {}, [[[24]]], "subspaces dim 24"),
        (pv.NoiseIntervention, {}, [[[99]]], "subspaces dim 99"),
        (pv.RotatedSpaceIntervention, {}, [[[30]]], "subspaces dim 30"),
        (pv.LowRankRotatedSpaceIntervention, {"low_rank_dimension": 2}, [[[2]]],
         "subspaces dim 2 .*width 2"),
        (pv.CollectIntervention, {}, [[[50]]], "subspaces dim 50"),
        (pv.VanillaIntervention, {}, [[["a"]]], "not a list of ints"),
        (pv.VanillaIntervention, {}, [[[0.5]]], "not a list of ints"),
    ],
)  # fmt: skip
def test_bad_subspaces(gpt2, cls, kw, subspaces, match):
    pvm = pv.IntervenableModel(site(intervention_type=cls, **kw), gpt2)
    sources = None if cls in (pv.ZeroIntervention, pv.NoiseIntervention, pv.CollectIntervention) else [ids(2, 5, 1)]  # fmt: skip
    locations = {"sources->base": 1} if sources else {"base": 1}
    with pytest.raises(pv.LocationError, match=match) as err:
        pvm(ids(2, 5, 0), sources, locations, subspaces=subspaces)
    assert isinstance(err.value, IndexError)


@pytest.mark.parametrize(
    "cls,kw",
    [
        (pv.VanillaIntervention, {}),
        (pv.RotatedSpaceIntervention, {}),
        (pv.BoundlessRotatedSpaceIntervention, {}),
        (pv.SigmoidMaskRotatedSpaceIntervention, {}),
        (pv.SigmoidMaskIntervention, {}),
        (pv.LowRankRotatedSpaceIntervention, {"low_rank_dimension": 2}),
        (pv.AutoencoderIntervention, {"latent_dim": 8}),
    ],
)
def test_source_of_another_length_without_locations(gpt2, cls, kw):
    """No unit_locations swaps the whole sequence: a 7-token source for a 5-token base is a
    DimensionMismatchError for every class (Boundless and SigmoidMask used to raise a raw
    RuntimeError), and the message says how to pick positions instead."""
    pvm = pv.IntervenableModel(site(intervention_type=cls, **kw), gpt2)
    with pytest.raises(pv.DimensionMismatchError, match=r"\(2, 7, 24\).*unit_locations"):
        pvm(ids(2, 5, 0), [ids(2, 7, 1)])


def test_source_batch_mismatch_names_both_batch_sizes(gpt2):
    pvm = pv.IntervenableModel(site(), gpt2)
    with pytest.raises(pv.DimensionMismatchError, match="3 examples and the base 2"):
        pvm(ids(2, 5, 0), [ids(3, 5, 1)], {"sources->base": 1})


def test_interchange_dim_must_be_an_int(gpt2):
    pvm = pv.IntervenableModel(site(), gpt2)
    pvm.interventions[pvm.sorted_keys[0]].set_interchange_dim("abc")
    with pytest.raises(pv.ConfigError, match="interchange_dim 'abc'"):
        pvm(ids(1, 5, 0), [ids(1, 5, 1)], {"sources->base": 1})


def test_locations_as_tensors_are_read_like_lists(gpt2):
    pvm = pv.IntervenableModel(site(), gpt2)
    loc = torch.tensor([[[1, 3]]])
    _, got = pvm(ids(1, 5, 0), [ids(1, 5, 1)], {"sources->base": (loc, loc)})
    _, want = pvm(ids(1, 5, 0), [ids(1, 5, 1)], {"sources->base": ([[[1, 3]]], [[[1, 3]]])})
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=0)


# ------------------------------------------------------------------ unit "t" (timesteps)
def test_unit_t_on_a_non_recurrent_component_is_refused(gpt2):
    with pytest.raises(pv.ConfigError, match=r"unit 't' \(timesteps\).*'block_output'.*'pos'"):
        pv.IntervenableModel(site(unit="t"), gpt2)


def test_unit_t_on_a_module_path_that_sees_the_whole_sequence(gpt2):
    pvm = pv.IntervenableModel(
        {"component": "transformer.h.0.output", "unit": "t",
         "intervention_type": pv.ZeroIntervention}, gpt2,
    )  # fmt: skip
    for loc in (None, {"base": 0}, {"base": 1}):
        with pytest.raises(pv.ConfigError, match=r"ran once on a tensor of shape \(2, 5, 24\)"):
            pvm(ids(2, 5, 0), unit_locations=loc)


# ------------------------------------------------------------------ analysis/
def test_sweep_positions_out_of_range_are_refused_not_wrapped(gpt2):
    with pytest.raises(pv.LocationError, match="position 7 is out of range .* length 5"):
        patching_sweep(gpt2, ids(1, 5, 0)["input_ids"], ids(1, 5, 1)["input_ids"], 3,
                       positions=[7], progress=False)  # fmt: skip


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"heads": [9], "components": "head_attention_value_output"}, pv.LocationError,
         r"head 9 out of range .*4 heads"),
        ({"metric": VOCAB + 3}, pv.LocationError, f"token id {VOCAB + 3} is out of range"),
        ({"metric": "x"}, pv.ConfigError, "metric must be a callable"),
        ({"layers": []}, pv.ConfigError, "needs layers"),
        ({"method": "fast"}, pv.ConfigError, "method 'fast'"),
        ({"source": ids(1, 6, 1)["input_ids"]}, pv.DimensionMismatchError, "same length"),
        ({"source": ids(3, 5, 1)["input_ids"]}, pv.DimensionMismatchError, "source batch"),
        ({"source": {"attention_mask": torch.ones(1, 5)}}, pv.ConfigError, "input_ids"),
    ],
)  # fmt: skip
def test_sweep_bad_arguments(gpt2, kwargs, error, match):
    args = {"base": ids(2, 5, 0)["input_ids"], "source": ids(1, 5, 1)["input_ids"],
            "metric": 3, "layers": [0], "progress": False, **kwargs}  # fmt: skip
    with pytest.raises(error, match=match):
        patching_sweep(gpt2, **args)


def test_metrics_check_token_ids():
    logits = torch.zeros(2, VOCAB)
    with pytest.raises(pv.LocationError, match="3 token ids for 2 rows"):
        token_probability([1, 2, 3])(logits)
    torch.testing.assert_close(token_probability(4)(logits), torch.full((2,), 1 / VOCAB))


def test_trace_input_error_is_a_pyvene_error():
    assert issubclass(TraceInputError, pv.PyveneError) and issubclass(TraceInputError, ValueError)


def test_collect_per_example_negative_dims(gpt2):
    """Regression (found by test_fuzz): per-example subspaces with a negative dim made Collect
    call torch.gather with a negative index (raw RuntimeError)."""
    pvm = pv.IntervenableModel(site(intervention_type=pv.CollectIntervention), gpt2)
    (_, [got]), _ = pvm(ids(2, 5, 0), unit_locations={"base": 2}, subspaces=[[[-1, 0], [3, -24]]])
    seen = []
    handle = gpt2.transformer.h[1].register_forward_hook(lambda m, a, o: seen.append(first(o)))
    try:
        gpt2(**ids(2, 5, 0))
    finally:
        handle.remove()
    want = torch.stack([seen[0][0, 2:3, [23, 0]], seen[0][1, 2:3, [3, 0]]])
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_constructor_and_key_errors(gpt2):
    with pytest.raises(pv.ConfigError, match="low_rank_dimension in 1..24.*'x'"):
        pv.IntervenableModel(
            site(intervention_type=pv.LowRankRotatedSpaceIntervention, low_rank_dimension="x"),
            gpt2,
        )
    with pytest.raises(pv.ConfigError, match="noise_level='abc'"):
        pv.NoiseIntervention(noise_level="abc")
    pvm = pv.IntervenableModel(site(), gpt2)
    with pytest.raises(KeyError) as err:
        pvm.interventions["layer_1_comp_block_outptu_unit_pos_nunit_1#0"]
    assert isinstance(err.value, pv.PyveneError)
    assert "Did you mean 'layer_1_comp_block_output_unit_pos_nunit_1#0'" in str(err.value)


def test_head_position_locations_checked_against_the_source_batch(gpt2):
    """Regression (found by test_fuzz): h.pos positions for 2 examples on a 1-example source
    run raised a raw RuntimeError from expand."""
    pvm = pv.IntervenableModel({"layer": 0, "component": "head_key_output", "unit": "h.pos"}, gpt2)
    src = [[[0]], [[1], [3]]]  # heads for the whole batch, positions per example
    with pytest.raises(pv.LocationError, match="2 examples, but this run's batch has 1"):
        pvm(ids(2, 4, 0), [ids(1, 4, 1)], {"sources->base": ([src], [[[[1]], [[1]]]])})

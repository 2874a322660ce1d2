"""api.md (seed document 001): each python block runs and equals an independent computation
(plain torch hooks on the Hugging Face model)."""

from __future__ import annotations

import pytest
import torch

import pyvene as pv
from seed_docs.support import (
    IOI,
    TUTORIAL1,
    assert_close,
    at_positions,
    capture,
    layers_of,
    manual_patch,
    pair,
    run_block,
    run_edited,
)


@pytest.mark.slow
def test_api_01_basic_usage(smol_dir, smol):
    ns = run_block("api_01", MODEL_DIR=smol_dir).ns
    intervenable, model = ns["intervenable"], smol[0]
    assert intervenable.model is ns["model"]
    assert list(intervenable.interventions) == ["layer_5_comp_block_output_unit_pos_nunit_1#0"]
    base, source = pair(smol[1])
    with torch.no_grad():
        _, out = intervenable(base, [source], {"sources->base": ([[[2]]], [[[6]]])})
    assert_close(out.logits, manual_patch(model, base, source, 5, [2], [6]))


@pytest.fixture(scope="module")
def api_intervenable(smol_dir):
    """api.md's running example: the Basic Usage block's model (layer 5 block_output swap)."""
    return run_block("api_01", MODEL_DIR=smol_dir).ns


@pytest.mark.slow
def test_api_02_forward_pass_shapes_and_values(api_intervenable, smol):
    model, tok = smol
    base, source = pair(tok)
    ns = run_block(
        "api_02",
        intervenable=api_intervenable["intervenable"],
        base_inputs=base,
        source_inputs=source,
    ).ns
    seq = base["input_ids"].shape[1]
    assert ns["original_output"] is None  # only with output_original_output=True
    assert_close(
        ns["intervened_output"].logits,
        manual_patch(model, base, source, 5, list(range(seq)), list(range(seq))),
    )
    assert_close(ns["outputs"].logits, manual_patch(model, base, source, 5, [5], [5]))
    with torch.no_grad():
        assert_close(ns["original"].logits, model(**base).logits)
    assert torch.equal(ns["intervened"].logits, ns["intervened_output"].logits)


@pytest.mark.slow
def test_api_03_generation_intervenes_on_the_prompt(api_intervenable, smol):
    """SPEC A: with sources and no unit_locations, generate() intervenes on the prompt as
    forward() would, then decodes on from that state."""
    model, tok = smol
    base, source = pair(tok)
    ns = run_block(
        "api_03",
        intervenable=api_intervenable["intervenable"],
        base_inputs=base,
        source_inputs=source,
    ).ns
    original, ids = ns["outputs"]
    n = base["input_ids"].shape[1]
    assert original is None and torch.equal(ids[:, :n], base["input_ids"])
    assert n < ids.shape[1] <= n + 50
    # teacher-forced reference without the cache: prompt positions of layer 5 from the source
    layer = layers_of(model)[5]
    s = capture(model, source, layer)
    want = run_edited(
        model, {"input_ids": ids[:, :-1]}, {layer: at_positions(s, list(range(n)), list(range(n)))}
    ).logits
    assert torch.equal(want[0, n - 1 :].argmax(-1), ids[0, n:])


@pytest.mark.slow
def test_api_05_optimizer_gets_only_the_intervention_weights(smol):
    model, _ = smol
    das = pv.IntervenableModel(
        {"layer": 5, "component": "block_output", "low_rank_dimension": 64,
         "intervention_type": pv.LowRankRotatedSpaceIntervention}, model)  # fmt: skip
    ns = run_block("api_05", intervenable=das, torch=torch).ns
    (weight,) = ns["params"]
    assert weight is das.interventions[0].rotate_layer.parametrizations.weight.original
    assert ns["optimizer"].param_groups[0]["params"] == [weight]
    assert ns["optimizer"].param_groups[0]["lr"] == 1e-4


@pytest.mark.slow
def test_api_06_basic_config(smol):
    model, tok = smol
    config = run_block("api_06", pv=pv).ns["config"]
    assert [tuple(r[:4]) for r in config.representations] == [(5, "block_output", "pos", 1)]
    base, source = pair(tok)
    with torch.no_grad():
        _, out = pv.IntervenableModel(config, model)(base, [source], {"sources->base": 3})
    assert_close(out.logits, manual_patch(model, base, source, 5, [3], [3]))


@pytest.mark.slow
def test_api_07_multiple_interventions_collect_three_sites(smol):
    model, tok = smol
    config = run_block("api_07", pv=pv).ns["config"]
    inputs = tok(TUTORIAL1[1], return_tensors="pt")
    with torch.no_grad():
        (_, got), _ = pv.IntervenableModel(config, model)(inputs)
    layers = layers_of(model)
    want = [
        capture(model, inputs, layers[3]),
        capture(model, inputs, layers[5].mlp),
        capture(model, inputs, layers[7].self_attn),
    ]
    assert len(got) == 3
    for g, w in zip(got, want):
        assert_close(g, w, atol=1e-5)


@pytest.mark.slow
def test_api_08_example_configs(smol):
    model, tok = smol
    position, low_rank, subspace = run_block("api_08", pv=pv).exprs
    base, source = pair(tok)
    layer = layers_of(model)[5]
    s = capture(model, source, layer)
    with torch.no_grad():
        _, out = pv.IntervenableModel(position, model)(base, [source], {"sources->base": 4})
    assert_close(out.logits, manual_patch(model, base, source, 5, [4], [4]))

    das = pv.IntervenableModel(low_rank, model)
    w = das.interventions[0].rotate_layer.weight.detach()
    assert w.shape == (576, 64)
    with torch.no_grad():
        _, out = das(base, [source], {"sources->base": 4})

    def project(x):
        x = x.clone()
        x[:, 4] = x[:, 4] + (s[:, 4] - x[:, 4]) @ w @ w.T
        return x

    assert_close(out.logits, run_edited(model, base, {layer: project}).logits)

    split = pv.IntervenableModel(subspace, model)
    for index, (lo, hi) in enumerate(subspace.subspace_partition):
        with torch.no_grad():
            _, out = split(base, [source], {"sources->base": 4}, subspaces=[[[index]]])

        def part(x, lo=lo, hi=hi):
            x = x.clone()
            x[:, 4, lo:hi] = s[:, 4, lo:hi]
            return x

        assert_close(out.logits, run_edited(model, base, {layer: part}).logits)


BASIC = {
    "api_09": lambda b, s: s,  # Vanilla
    "api_10": lambda b, s: b + s,  # Addition
    "api_11": lambda b, s: b - s,  # Subtraction
    "api_12": lambda b, s: torch.zeros_like(b),  # Zero
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BASIC))
def test_api_basic_interventions_equal_their_formula(name, smol):
    model, tok = smol
    (rep,) = run_block(name, pv=pv).exprs
    base, source = pair(tok)
    pvm = pv.IntervenableModel(rep, model)
    sources = None if rep.intervention_type is pv.ZeroIntervention else [source]
    with torch.no_grad():
        _, out = pvm(base, sources, {"sources->base": 4} if sources else {"base": 4})
    layer = layers_of(model)[5]
    s = capture(model, source, layer)

    def fn(x):
        x = x.clone()
        x[:, 4] = BASIC[name](x[:, 4], s[:, 4])
        return x

    assert_close(out.logits, run_edited(model, base, {layer: fn}).logits)


@pytest.mark.slow
def test_api_13_collect_returns_the_block_output(smol):
    model, tok = smol
    inputs = tok(TUTORIAL1[0], return_tensors="pt")
    ns = run_block("api_13", pv=pv, model=model, inputs=inputs).ns
    hidden = run_edited(model, inputs, output_hidden_states=True).hidden_states
    (got,) = ns["collected"]
    assert_close(got, hidden[6], atol=0)
    # the seed's "_, collected = ..." would bind the model's output instead (SPEC A)
    with torch.no_grad():
        _, as_written = ns["intervenable"](base=inputs)
    assert hasattr(as_written, "logits")


ROTATIONS = ("api_14", "api_15", "api_16", "api_17")


@pytest.mark.slow
@pytest.mark.parametrize("name", ROTATIONS)
def test_api_trainable_interventions_equal_their_formula(name, smol):
    model, tok = smol
    (rep,) = run_block(name, pv=pv).exprs
    torch.manual_seed(0)
    pvm = pv.IntervenableModel(rep, model)
    inter = pvm.interventions[0]
    if name == "api_17":  # move the sigmoid mask off its uniform 0.5 start
        with torch.no_grad():
            inter.mask.normal_(0, 0.02)
    base, source = pair(tok)
    with torch.no_grad():
        _, out = pvm(base, [source], {"sources->base": 4})
    layer = layers_of(model)[5]
    s = capture(model, source, layer)[:, 4]
    with torch.no_grad():
        if name == "api_14":  # SPEC A: no subspaces = every rotated coordinate = a swap
            formula = lambda b: s  # noqa: E731
        elif name == "api_15":
            w = inter.rotate_layer.weight
            assert w.shape == (576, 64)
            formula = lambda b: b + (s - b) @ w @ w.T  # noqa: E731
        elif name == "api_16":
            r, m = inter.rotate_layer.weight, inter.mask()
            formula = lambda b: ((1 - m) * (b @ r) + m * (s @ r)) @ r.T  # noqa: E731
        else:
            m = torch.sigmoid(inter.mask / inter.temperature)
            formula = lambda b: (1 - m) * b + m * s  # noqa: E731

    def fn(x):
        x = x.clone()
        x[:, 4] = formula(x[:, 4])
        return x

    assert_close(out.logits, run_edited(model, base, {layer: fn}).logits, atol=2e-4)


@pytest.mark.slow
def test_api_18_19_unit_location_forms(smol):
    model, tok = smol
    base, source = pair(tok, IOI)
    pvm = pv.IntervenableModel(
        {"layer": 5, "component": "block_output", "max_number_of_units": 1}, model
    )
    fmt = run_block("api_18", source_locations=[[[3]]], base_locations=[[[5]]]).ns
    examples = run_block("api_19").history["unit_locations"]
    cases = [(fmt["unit_locations"], [3], [5])] + [
        (loc, loc["sources->base"][0][0][0], loc["sources->base"][1][0][0]) for loc in examples
    ]
    assert [c[1:] for c in cases[1:]] == [([5], [5]), ([3, 5, 7], [3, 5, 7]), ([5], [10])]
    for loc, src_pos, dst_pos in cases:
        with torch.no_grad():
            _, out = pvm(base, [source], loc)
        assert_close(out.logits, manual_patch(model, base, source, 5, src_pos, dst_pos))


@pytest.mark.slow
def test_api_20_activation_patching_whole_layer(smol):
    model, tok = smol
    config = run_block("api_20", pv=pv, layer=12).ns["config"]
    base, source = pair(tok)
    with torch.no_grad():
        _, out = pv.IntervenableModel(config, model)(base, [source])
        source_logits = model(**source).logits
    # every position of layer 12 from the source: the rest of the run is the source's
    assert_close(out.logits, source_logits)


@pytest.mark.slow
def test_api_21_noise_then_restore(smol):
    model, tok = smol
    config = run_block("api_21", pv=pv, target_layer=12).ns["config"]
    tracer = pv.IntervenableModel(config, model)
    clean = tok(TUTORIAL1[1], return_tensors="pt")
    with torch.no_grad():
        _, noised = tracer(clean, [None, None])  # the noise alone (no source for the restore)
        _, restored = tracer(clean, [clean])  # one source serves every group
        clean_logits = model(**clean).logits
    noise = tracer.interventions[0]  # seeded Gaussian, ROME's GPT-2 XL scale by default
    gen = torch.Generator().manual_seed(noise.seed)
    seq = clean["input_ids"].shape[1]
    delta = torch.randn((1, seq, 576), generator=gen) * noise.noise_level
    want = run_edited(model, clean, in_edits={layers_of(model)[0]: lambda x: x + delta}).logits
    assert_close(noised.logits, want)
    assert not torch.allclose(noised.logits, clean_logits, atol=1e-2)
    assert_close(restored.logits, clean_logits)  # every position restored at layer 12

"""Batched sweeps equal per-cell IntervenableModel runs; ROME tracing; the bundled model."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_gpt2, make_llama

import pyvene as pv
from pyvene.analysis import (
    Cell,
    head_sweep,
    logit_difference,
    patching_sweep,
    planning,
    window_layers,
)
from pyvene.analysis import cells as cells_mod
from pyvene.analysis.tracing import (
    TraceInputError,
    causal_trace,
    corrupt_embeddings,
    subject_span,
    target_token_id,
)

COMPONENTS = ("block_output", "mlp_output", "attention_output")
# Sites inside a layer: upstream of the last layer's cut to the last position (attention
# input, q/k/v: the last position attends to every position's keys/values) and downstream.
MORE_COMPONENTS = (
    "block_input", "attention_input", "query_output", "key_output", "value_output",
    "attention_value_output", "mlp_input", "mlp_activation",
)  # fmt: skip


def logit7(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7] - logits.mean(-1)


def reference(model, base, source, comp, layers, positions, head, metric) -> float:
    """The cell the way a user writes it: one IntervenableModel and forward per cell."""
    unit = "h.pos" if head is not None else "pos"
    reps = [
        pv.RepresentationConfig(
            layer=layer, component=comp, unit=unit, max_number_of_units=len(positions),
            intervention_type=pv.VanillaIntervention,
        )
        for layer in layers
    ]  # fmt: skip
    pvm = pv.IntervenableModel(pv.IntervenableConfig(representations=reps), model)
    key = "input_ids" if "input_ids" in base else "inputs_embeds"
    batch = base[key].shape[0]
    source = {k: v.expand(batch, *v.shape[1:]) for k, v in source.items()}
    loc = (
        [[[head]] * batch, [list(positions)] * batch]
        if head is not None
        else [list(positions)] * batch
    )
    n = len(layers)
    _, out = pvm(
        base, sources=[source] * n, unit_locations={"sources->base": ([loc] * n, [loc] * n)}
    )
    return metric(out.logits[:, -1]).float().mean().item()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def tiny(request):
    model = make_gpt2(n_layer=3) if request.param == "gpt2" else make_llama(n_layer=3)
    return request.param, model


@pytest.mark.parametrize("method", ["auto", "full"])
@pytest.mark.parametrize("comp", COMPONENTS)
def test_grid_equals_per_cell_runs(tiny, comp, method):
    _, model = tiny
    base, source = ids(1, 6, seed=1), ids(1, 6, seed=2)
    res = patching_sweep(model, base, source, logit7, comp, method=method, progress=False)
    grid = res[comp]
    assert grid.shape == (3, 6)
    want = torch.tensor(
        [[reference(model, base, source, comp, (l,), (p,), None, logit7) for p in range(6)]
         for l in range(3)]
    )  # fmt: skip
    torch.testing.assert_close(grid, want, atol=1e-5, rtol=0)
    assert grid.std() > 1e-3  # the patches do something
    assert res.base_value == pytest.approx(logit7(model(**base).logits[:, -1]).item(), abs=1e-5)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def sharp(request):
    """Tiny models with 8x larger query/key weights: attention far from uniform, so that
    query/key patches move the metric well above the 1e-5 tolerance."""
    if request.param == "gpt2":
        model = make_gpt2(n_layer=3)
        for block in model.transformer.h:
            block.attn.c_attn.weight.data[:, : 2 * model.config.n_embd] *= 8
    else:
        model = make_llama(n_layer=3)
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.data *= 8
            layer.self_attn.k_proj.weight.data *= 8
    return request.param, model


@pytest.mark.parametrize("comp", MORE_COMPONENTS)
def test_inner_components_equal_per_cell_runs(sharp, comp):
    _, model = sharp
    base, source = ids(1, 5, seed=11), ids(1, 5, seed=12)
    grid = patching_sweep(model, base, source, logit7, comp, progress=False)[comp]
    want = torch.tensor(
        [[reference(model, base, source, comp, (l,), (p,), None, logit7) for p in range(5)]
         for l in range(3)]
    )  # fmt: skip
    torch.testing.assert_close(grid, want, atol=1e-5, rtol=0)
    assert grid.std() > 1e-3  # the patches do something


def shared_prefix_pair(seq: int = 7, cut: int = 3):
    """Two base rows and one source that share their first tokens (row 0: ``cut`` tokens,
    row 1: one token), like an IOI pair: patches there are no-ops."""
    source = ids(1, seq, seed=21)["input_ids"]
    base = ids(2, seq, seed=22)["input_ids"]
    base[0, :cut] = source[0, :cut]
    base[1, :1] = source[0, :1]
    return {"input_ids": base}, {"input_ids": source}


@pytest.mark.parametrize("comp", ["block_output", "attention_output", "mlp_output"])
def test_shared_prefix_is_skipped_and_exact(tiny, comp):
    _, model = tiny
    base, source = shared_prefix_pair()
    res = patching_sweep(model, base, source, logit7, comp, progress=False)
    want = torch.tensor(
        [[reference(model, base, source, comp, (l,), (p,), None, logit7) for p in range(7)]
         for l in range(3)]
    )  # fmt: skip
    torch.testing.assert_close(res[comp], want, atol=1e-5, rtol=0)
    # position 0 is shared by both rows: the cells are the base run's value, not computed
    assert torch.equal(res[comp][:, 0], torch.full((3,), res.base_value))


def test_shared_prefix_trims_rows():
    model = make_llama(n_layer=3)
    base, source = shared_prefix_pair(cut=3)
    keys = {("block_input", 1)}
    src, _, _ = cells_mod.collect_runs(model, source, keys, None)
    bas, _, _ = cells_mod.collect_runs(model, base, keys, None)
    sites = {k: cells_mod.SweepSite(model, *k, src[k].shape[-1]) for k in keys}
    todo = [Cell("block_input", (1,), (p,)) for p in range(7)]
    todo.append(Cell("block_input", (1,), tuple(range(7))))  # all positions: starts at 3 / 1
    rows, known = planning.plan_rows(todo, 2, sites, src, bas, 3)
    assert sorted(known) == [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert {(r.cell, r.b): r.q for r in rows}[(7, 0)] == 3
    assert {(r.cell, r.b): r.q for r in rows}[(7, 1)] == 1


@pytest.mark.parametrize("overhead", [0, None, float("inf")])
def test_position_buckets_agree(tiny, overhead):
    """One bucket per first position, the cost model's choice, and one merged bucket (rows
    starting later recompute the base run's positions) all equal the per-cell runs."""
    _, model = tiny
    base, source = shared_prefix_pair()
    cells = [Cell(c, (l,), (p,)) for c in COMPONENTS for l in range(3) for p in (1, 3, 4, 6)]
    cells += [Cell("head_attention_value_output", (l,), tuple(range(7)), 1) for l in range(3)]
    vals, _, _ = cells_mod.run_cells(
        model, base, source, cells, logit7, overhead_tokens=overhead, max_rows=16
    )
    for cell, v in zip(cells, vals.tolist()):
        want = reference(
            model, base, source, cell.component, cell.layers, cell.positions, cell.head, logit7
        )
        assert v == pytest.approx(want, abs=1e-5), cell


def test_bucket_plan_merges_for_overhead():
    rows = [planning.Row(i, 0, i % 3, q) for i, q in enumerate([0, 2, 2, 5, 5, 5])]

    def plan(overhead):
        return [q for q, _ in planning.bucket_rows(rows, 8, 3, lambda n: 100, overhead)]

    assert plan(0) == [0, 2, 5]
    assert plan(float("inf")) == [0]
    chosen = planning.bucket_rows(rows, 8, 3, lambda n: 100, 10)
    assert sorted(r.cell for _, members in chosen for r in members) == list(range(6))


def test_last_layer_computes_the_last_position_only():
    model = make_llama(n_layer=3)
    seen: list[int] = []
    mlp = model.model.layers[-1].mlp
    handle = mlp.register_forward_hook(lambda mod, args, out: seen.append(out.shape[1]))
    try:
        res = patching_sweep(model, ids(1, 6, seed=1), ids(1, 6, seed=2), logit7, progress=False)
    finally:
        handle.remove()
    assert seen[:2] == [6, 6]  # the source and base runs
    assert len(seen) > 2 and set(seen[2:]) == {1}  # the sweep's batches
    assert res["block_output"].std() > 1e-3


def test_window_per_component(tiny):
    _, model = tiny
    base, source = ids(1, 5, seed=3), ids(1, 5, seed=4)
    res = patching_sweep(
        model, base, source, logit7, ["block_output", "mlp_output"],
        window={"mlp_output": 3}, progress=False,
    )  # fmt: skip
    for layer in range(3):
        for pos in (0, 3):
            want = reference(model, base, source, "block_output", (layer,), (pos,), None, logit7)
            assert res["block_output"][layer, pos].item() == pytest.approx(want, abs=1e-5)
            lays = window_layers(layer, 3, 3)
            want = reference(model, base, source, "mlp_output", lays, (pos,), None, logit7)
            assert res["mlp_output"][layer, pos].item() == pytest.approx(want, abs=1e-5)


def test_sdpa_llama_equals_per_cell_runs():
    model = make_llama(n_layer=3)
    model.config._attn_implementation = "sdpa"
    base, source = shared_prefix_pair()
    res = head_sweep(model, base, source, logit7, per_position=True, progress=False)
    grid = res["head_attention_value_output"]
    for layer in range(3):
        for h in (0, 3):
            for p in (2, 5, 6):
                want = reference(
                    model, base, source, "head_attention_value_output", (layer,), (p,), h, logit7
                )
                assert grid[layer, h, p].item() == pytest.approx(want, abs=1e-5)


def test_windows_batches_and_chunks(tiny):
    _, model = tiny
    base, source = ids(2, 5, seed=3), ids(1, 5, seed=4)
    res = patching_sweep(
        model, base, source, logit7, ["mlp_output", "block_output"], window=2, max_rows=3,
        progress=False,
    )  # fmt: skip
    for comp in ("mlp_output", "block_output"):
        for layer in range(3):
            for pos in (0, 4):
                want = reference(
                    model, base, source, comp, window_layers(layer, 2, 3), (pos,), None, logit7
                )
                assert res[comp][layer, pos].item() == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize("per_position", [False, True])
@pytest.mark.parametrize(
    "comp", ["head_attention_value_output", "head_query_output", "head_key_output"]
)
def test_head_sweep_equals_per_cell_runs(tiny, per_position, comp):
    name, model = tiny
    base, source = ids(1, 5, seed=5), ids(1, 5, seed=6)
    metric = logit_difference(7, 9)
    res = head_sweep(
        model, base, source, metric, per_position=per_position, component=comp, progress=False
    )
    grid = res[comp]
    heads = model.config.num_attention_heads if name == "llama" else model.config.n_head
    if name == "llama" and comp == "head_key_output":
        heads = model.config.num_key_value_heads  # key heads under GQA (4 q / 2 kv)
    assert grid.shape[:2] == (3, heads)  # query heads, also under GQA (4 q / 2 kv)
    for layer in range(3):
        for h in range(heads):
            if per_position:
                for p in (0, 2, 4):
                    want = reference(model, base, source, comp, (layer,), (p,), h, metric)
                    assert grid[layer, h, p].item() == pytest.approx(want, abs=1e-5)
            else:
                want = reference(model, base, source, comp, (layer,), tuple(range(5)), h, metric)
                assert grid[layer, h].item() == pytest.approx(want, abs=1e-5)


def test_bad_heads_are_errors(tiny):
    _, model = tiny
    base, source = ids(1, 4, seed=1), ids(1, 4, seed=2)
    with pytest.raises(ValueError, match="out of range"):
        head_sweep(model, base, source, logit7, heads=[99], progress=False)
    with pytest.raises(ValueError, match="no heads"):
        cells_mod.run_cells(model, base, source, [Cell("mlp_output", (0,), (1,), 0)], logit7)


def test_trace_cells_equal_noised_per_cell_runs():
    model = make_llama(n_layer=3)
    prompt = torch.tensor([[3, 8, 11, 4, 9, 21]])
    noised = corrupt_embeddings(model, prompt, (1, 3), samples=3, noise_level=0.5, seed=7)
    base, source = {"inputs_embeds": noised}, {"input_ids": prompt}
    metric = logit7
    res = patching_sweep(model, base, source, metric, COMPONENTS, window=2, progress=False)
    for comp in COMPONENTS:
        for layer in range(3):
            lays = window_layers(layer, 2, 3)
            for pos in (1, 2, 5):
                want = reference(model, base, source, comp, lays, (pos,), None, metric)
                assert res[comp][layer, pos].item() == pytest.approx(want, abs=1e-5)


def test_noise_is_seeded():
    model = make_gpt2()
    prompt = torch.tensor([[3, 8, 11, 4]])
    a = corrupt_embeddings(model, prompt, (0, 2), 4, 0.3, seed=1)
    b = corrupt_embeddings(model, prompt, (0, 2), 4, 0.3, seed=1)
    c = corrupt_embeddings(model, prompt, (0, 2), 4, 0.3, seed=2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    clean = model.get_input_embeddings()(prompt)
    assert torch.equal(a[:, 2:], clean.expand(4, -1, -1)[:, 2:])  # only the subject is noised
    assert not torch.equal(a[:, :2], clean.expand(4, -1, -1)[:, :2])


# ------------------------------------------------------------------------ bundled SmolLM2


@pytest.fixture(scope="module")
def smollm2():
    zoo = pytest.importorskip("pyvene.zoo")
    try:
        return zoo.load_smollm2()
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))


PROMPT, TARGET, SUBJECT = "The Eiffel Tower is in the city of", " Paris", "The Eiffel Tower"


def test_subject_and_target_lookup(smollm2):
    _, tok = smollm2
    assert subject_span(tok, PROMPT, SUBJECT) == (0, 4)
    assert subject_span(tok, PROMPT, "Tower") == (3, 4)
    with pytest.raises(TraceInputError):
        subject_span(tok, PROMPT, "Louvre")
    assert target_token_id(tok, TARGET) == tok(TARGET, add_special_tokens=False)["input_ids"][0]
    with pytest.raises(TraceInputError):
        target_token_id(tok, " Parisxyzq")


def test_eiffel_trace_two_site_pattern(smollm2):
    """The ROME pattern: restoring a subject token in early/middle layers, or the last token
    in late layers, brings p(Paris) back; the last token early and the subject late do not.
    (On SmolLM2 the early site is 'iffel', the subject's second-to-last token.)"""
    model, tok = smollm2
    with torch.no_grad():
        res = causal_trace(
            model, tok, PROMPT, TARGET, SUBJECT, samples=3, kinds=("block_output",),
            progress=False, seed=0,
        )  # fmt: skip
    grid, n_layers = res.grids["block_output"], len(res.layers)
    lo, hi = res.subject
    assert res.clean_prob > 0.3 and res.corrupted_prob < 0.1
    effect = res.clean_prob - res.corrupted_prob
    strong = res.corrupted_prob + 0.4 * effect
    weak = res.corrupted_prob + 0.2 * effect
    assert grid[: n_layers // 2, lo:hi].max() > strong  # early site: subject, early/middle
    assert grid[2 * n_layers // 3 :, -1].max() > strong  # late site: last token, late layers
    assert grid[: n_layers // 3, -1].max() < weak  # last token, early layers: no
    assert grid[-3:, lo:hi].max() < weak  # subject, last layers: no (already read out)
    assert grid[: n_layers // 2, hi:-1].max() < weak  # tokens between: no

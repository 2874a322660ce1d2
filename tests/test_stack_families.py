"""The fast sweep path of every family whose table declares a layer stack equals whole-model
runs cell by cell (single and packed ragged jobs), on a tiny random model of each type; the
families without one say why."""

from __future__ import annotations

import pytest
import torch
import transformers as T
from family_models import build

from pyvene.analysis.cells import Cell, run_cells
from pyvene.analysis.packed import Job, run_jobs
from pyvene.analysis.stack import layer_stack, stack_unavailable
from pyvene.families import FAMILIES, components_of

STACKED = sorted(t for t, f in FAMILIES.items() if f.stack is not None)


def metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7].float() - logits.float().mean(-1)


def _cells(model, seq: int) -> list[Cell]:
    comps = ["block_output", "mlp_output", "attention_output"]
    cells = [Cell(c, (k,), (p,)) for c in comps for k in (0, 1) for p in (0, 3, seq - 1)]
    cells += [Cell("mlp_output", (0, 1), (2, 4)), Cell("block_input", (1,), (seq - 2,))]
    if "head_attention_value_output" in components_of(model):
        cells += [Cell("head_attention_value_output", (k,), (2, seq - 1), 1) for k in (0, 1)]
    return cells


def _pair(seq: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(1, 60, (2, seq), generator=g)
    source = torch.randint(1, 60, (1, seq), generator=g)
    return base, source


def test_every_causal_lm_family_has_a_stack():
    want = {"gpt2", "gpt_neo", "gpt_neox", "llama", "mistral", "qwen2", "qwen3", "gemma",
            "gemma2", "gemma3_text", "olmo", "olmo2", "phi", "phi3", "opt", "mixtral"}  # fmt: skip
    assert want <= set(STACKED)
    for t, fam in FAMILIES.items():
        assert fam.stack is not None or fam.no_stack, f"{t}: no stack and no reason"


@pytest.mark.parametrize("model_type", STACKED)
def test_stack_equals_whole_model(model_type):
    model, _ = build(model_type)
    model.eval()
    assert layer_stack(model, 7) is not None, stack_unavailable(model, 7)
    base, source = _pair(7, 0)
    cells = _cells(model, 7)
    with torch.no_grad():
        fast, fb, fs = run_cells(model, base, source, cells, metric, method="stack")
        full, wb, ws = run_cells(model, base, source, cells, metric, method="full")
    torch.testing.assert_close(fast, full, atol=1e-4, rtol=1e-4)
    assert (full - wb).abs().max() > 1e-3  # the patches change the metric
    # Packed ragged jobs (prompts of 5 and 7 tokens share batches) equal whole-model runs.
    jobs = [Job(*_pair(seq, seq), _cells(model, seq), metric) for seq in (5, 7)]
    with torch.no_grad():
        packed = run_jobs(model, jobs, method="stack")
    for job, (values, _, _) in zip(jobs, packed):
        with torch.no_grad():
            want = run_cells(model, job.base, job.source, job.cells, metric, method="full")[0]
        torch.testing.assert_close(values, want, atol=1e-4, rtol=1e-4)


def test_reasons_without_a_stack():
    bert = T.BertForMaskedLM(T.BertConfig(hidden_size=16, num_hidden_layers=1,
                                          num_attention_heads=2, intermediate_size=16))  # fmt: skip
    assert "bidirectional encoder" in stack_unavailable(bert.eval(), 5)
    mistral, _ = build("mistral")
    mistral.config.sliding_window = 4
    assert "longer than the sliding window (4)" in stack_unavailable(mistral.eval(), 7)
    assert stack_unavailable(mistral, 4) is None
    neo, _ = build("gpt_neo")  # window 4, enforced inside its local layers
    assert stack_unavailable(neo.eval(), 7) is None
    assert "training mode" in stack_unavailable(neo.train(), 7)

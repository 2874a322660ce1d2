"""A packed job of ragged prompts collects its source and base runs in one left-padded forward
each (counted with a plain forward hook on the model), and its cells still equal each job's
whole-model sweep; left-padded clean predictions equal unpadded forwards."""

from __future__ import annotations

import pytest
import torch

from pyvene.analysis.cells import Cell, run_cells
from pyvene.analysis.dataset_trace import trace_dataset
from pyvene.analysis.packed import Job, run_jobs
from pyvene.analysis.padded import can_pad, last_logits

zoo = pytest.importorskip("pyvene.zoo")


def _model(kind: str, tokenizer: bool = False):
    try:
        make = zoo.create_llama if kind == "llama" else zoo.create_gpt2_lm
        out = make(seed=1, with_tokenizer=tokenizer)
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    return (out[2], out[1]) if tokenizer else out[-1].eval()


def metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 5].float() - logits.float().mean(-1)


def _job(seq: int, nb: int, ns: int) -> Job:
    g = torch.Generator().manual_seed(seq)
    base = torch.randint(1, 60, (nb, seq), generator=g)
    source = base[:ns].clone()
    source[:, seq // 2 :] = torch.randint(1, 60, (ns, seq - seq // 2), generator=g)
    cells = [Cell(c, (k,), (p,)) for c in ("block_output", "mlp_output") for k in (0, 1)
             for p in range(seq)]  # fmt: skip
    cells.append(Cell("attention_output", (0, 1), (seq - 3, seq - 1)))
    return Job(base, source, cells, metric)


class _Forwards:
    """Counts top-level model forwards and their batch sizes (a plain torch hook)."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.batches: list[int] = []
        self.handle = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module, args, kwargs) -> None:
        x = kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        self.batches.append(int((args[0] if args else x).shape[0]))


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_packed_job_collects_in_two_forwards(kind):
    model = _model(kind)
    jobs = [_job(seq, nb, ns) for seq, nb, ns in ((5, 2, 1), (9, 3, 3), (7, 1, 1), (6, 2, 2))]
    assert can_pad(model, 9)
    counter = _Forwards(model)
    try:
        with torch.no_grad():
            got = run_jobs(model, jobs, method="stack")
    finally:
        counter.handle.remove()
    # One forward for the sources (1+3+1+2 rows), one for the bases (2+3+1+2 rows); the
    # sweep rows run layer by layer, never through the model's forward.
    assert counter.batches == [7, 8]
    for job, (values, base_value, src_value) in zip(jobs, got):
        with torch.no_grad():
            want, wb, ws = run_cells(model, job.base, job.source, job.cells, metric,
                                     method="full")  # fmt: skip
        torch.testing.assert_close(values, want, atol=1e-5, rtol=0)
        assert base_value == pytest.approx(float(wb), abs=1e-5)
        assert src_value == pytest.approx(float(ws), abs=1e-5)
        assert (want - wb).abs().max() > 1e-3  # the patches change the metric


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_left_padded_predictions_equal_unpadded(kind):
    model = _model(kind)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(1, 60, (1, n), generator=g) for n in (3, 8, 5, 8, 1)]
    counter = _Forwards(model)
    try:
        got = last_logits(model, prompts)
    finally:
        counter.handle.remove()
    assert counter.batches == [5]
    for ids, logits in zip(prompts, got):
        with torch.no_grad():
            want = model(input_ids=ids).logits[0, -1]
        torch.testing.assert_close(logits, want, atol=1e-5, rtol=0)
        assert int(logits.argmax()) == int(want.argmax())


def test_dataset_batch_costs_three_forwards():
    model, tok = _model("llama", tokenizer=True)
    facts = [("The Eiffel Tower is in", "The Eiffel Tower"), ("Rome is the capital of", "Rome"),
             ("Toyota was founded in the country of", "Toyota")]  # fmt: skip
    records = []
    for prompt, subject in facts:
        with torch.no_grad():
            top = int(model(torch.tensor([tok(prompt)["input_ids"]])).logits[0, -1].argmax())
        records.append({"prompt": prompt, "subject": subject, "target": tok.decode([top])})
    counter = _Forwards(model)
    try:
        res = trace_dataset(model, tok, records, samples=2, window=2, noise_level=0.5,
                            kinds=("block_output",), progress=False, records_per_batch=3)  # fmt: skip
    finally:
        counter.handle.remove()
    assert res.indices == [0, 1, 2] and res.n_skipped == 0
    # The clean-prediction filter (3 prompts), the clean runs (3), the corrupted runs (3 x 2).
    assert counter.batches == [3, 3, 6]


def test_jobs_of_mixed_input_kinds_share_padded_batches():
    model = _model("llama")
    jobs = [_job(seq, nb, ns) for seq, nb, ns in ((5, 2, 1), (8, 1, 1), (6, 2, 2))]
    embed = model.get_input_embeddings()
    mid = jobs[1]
    with torch.no_grad():  # the middle job's base as embeddings: a second base batch
        jobs[1] = Job({"inputs_embeds": embed(mid.base)}, mid.source, mid.cells, metric)
    counter = _Forwards(model)
    try:
        with torch.no_grad():
            got = run_jobs(model, jobs, method="stack")
    finally:
        counter.handle.remove()
    assert counter.batches == [4, 4, 1]  # sources; bases given as ids; bases as embeddings
    for job, (values, base_value, _) in zip(jobs, got):
        with torch.no_grad():
            want, wb, _ = run_cells(model, job.base, job.source, job.cells, metric, method="full")
        torch.testing.assert_close(values, want, atol=1e-5, rtol=0)
        assert base_value == pytest.approx(float(wb), abs=1e-5)

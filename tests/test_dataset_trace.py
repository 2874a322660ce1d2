"""Dataset tracing: packed ragged traces equal per-prompt causal_trace, ROME's buckets and
filter, streaming to a run folder and resuming."""

from __future__ import annotations

import json

import pytest
import torch

from pyvene.analysis.dataset_trace import (
    BUCKETS,
    load_trace_dataset,
    trace_dataset,
)
from pyvene.analysis.store import RunFolderError
from pyvene.analysis.tracing import causal_trace

zoo = pytest.importorskip("pyvene.zoo")

FACTS = [
    ("The Eiffel Tower is in", "The Eiffel Tower", " Paris"),
    ("Michael Jordan plays the sport of", "Michael Jordan", " basketball"),
    ("Rome is the capital of", "Rome", " Italy"),
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux", " French"),
    ("Toyota was founded in the country of", "Toyota", " Japan"),
]
OPTS = dict(samples=2, window=2, noise_level=0.5, seed=3, progress=False)


def _tiny(kind: str):
    try:
        if kind == "llama":
            _, tok, model = zoo.create_llama(seed=1, with_tokenizer=True)
        else:
            _, tok, model = zoo.create_gpt2_lm(seed=1, with_tokenizer=True)
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    return model, tok


@pytest.fixture(scope="module")
def llama():
    return _tiny("llama")


ALL = ("block_output", "mlp_output", "attention_output")


@pytest.mark.parametrize(
    "kind,method,kinds",
    [("llama", "auto", ALL), ("gpt2", "auto", ALL[::2]), ("llama", "full", ALL[1:2])],
)
def test_ragged_dataset_equals_per_prompt_traces(kind, method, kinds):
    model, tok = _tiny(kind)
    res = trace_dataset(model, tok, FACTS, filter_correct=False, records_per_batch=4,
                        method=method, kinds=kinds, **OPTS)  # fmt: skip
    assert res.indices == list(range(len(FACTS))) and res.n_skipped == 0
    assert len({len(t.tokens) for t in res.traces}) > 2  # ragged
    refs = [causal_trace(model, tok, p, t, s, kinds=kinds, **OPTS) for p, s, t in FACTS]
    for got, ref in zip(res.traces, refs):
        assert got.tokens == ref.tokens and got.subject == ref.subject
        assert got.clean_prob == pytest.approx(ref.clean_prob, abs=1e-5)
        assert got.corrupted_prob == pytest.approx(ref.corrupted_prob, abs=1e-5)
        for kind_ in ref.grids:
            torch.testing.assert_close(got.grids[kind_], ref.grids[kind_], atol=1e-5, rtol=0)
    # ROME's buckets, computed by hand from the per-prompt references.
    for kind_ in kinds:
        aie, counts = res.bucket_effects(kind_)
        rows = {b: [] for b in BUCKETS}
        for ref in refs:
            lo, hi = ref.subject
            g, n = ref.grids[kind_] - ref.corrupted_prob, len(ref.tokens)
            rows[BUCKETS[0]].append(g[:, lo])
            if hi - lo > 2:
                rows[BUCKETS[1]].append(g[:, lo + 1 : hi - 1].mean(1))
            rows[BUCKETS[2]].append(g[:, hi - 1])
            rows[BUCKETS[3]].append(g[:, hi])
            if n - hi > 2:
                rows[BUCKETS[4]].append(g[:, hi + 1 : n - 1].mean(1))
            rows[BUCKETS[5]].append(g[:, n - 1])
        for b, name in enumerate(BUCKETS):
            assert counts[b] == len(rows[name])
            want = torch.stack(rows[name]).mean(0)
            torch.testing.assert_close(aie[b], want, atol=1e-5, rtol=0)


def test_filter_skips_records_the_model_gets_wrong(llama):
    model, tok = llama
    facts = []
    for prompt, subject, _ in FACTS[:3]:
        ids = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            top = int(model(ids).logits[0, -1].argmax())
        facts.append({"prompt": prompt, "subject": subject, "target": tok.decode([top])})
    facts[1]["target"] = " zebra" if facts[1]["target"] != " zebra" else " lion"
    res = trace_dataset(model, tok, facts, kinds=("block_output",), **OPTS)
    assert res.indices == [0, 2]
    assert [s["index"] for s in res.skipped] == [1] and res.n_skipped == 1
    assert "not the target" in res.skipped[0]["reason"]


def test_streamed_run_resumes_and_loads(llama, tmp_path):
    model, tok = llama
    opts = dict(kinds=("block_output", "attention_output"), filter_correct=False,
                records_per_batch=2, **OPTS)  # fmt: skip
    whole = trace_dataset(model, tok, FACTS, **opts)
    seen = []

    def stop_after_two(batch):
        seen.append(batch)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trace_dataset(model, tok, FACTS, out_dir=tmp_path, on_batch=stop_after_two, **opts)
    assert len(list(tmp_path.glob("part-*.json"))) == 2
    partial = load_trace_dataset(tmp_path)
    assert partial.indices == [0, 1, 2, 3]
    later = []
    resumed = trace_dataset(model, tok, FACTS, out_dir=tmp_path, on_batch=later.append, **opts)
    assert later == [[4]]  # only the record the interrupted run had not stored
    for res in (resumed, load_trace_dataset(tmp_path)):
        assert res.indices == whole.indices
        for a, b in zip(res.traces, whole.traces):
            for k in opts["kinds"]:
                torch.testing.assert_close(a.grids[k], b.grids[k], atol=0, rtol=0)
        for k in opts["kinds"]:
            torch.testing.assert_close(res.aie[k], whole.aie[k], atol=0, rtol=0)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["format"] == "pyvene.trace" and meta["params"]["samples"] == 2
    with pytest.raises(RunFolderError, match="samples"):
        trace_dataset(model, tok, FACTS, out_dir=tmp_path, **{**opts, "samples": 3})


def test_figure2_plot(llama, tmp_path):
    model, tok = llama
    res = trace_dataset(model, tok, FACTS[:2], filter_correct=False, **OPTS)
    fig = res.plot(tmp_path / "fig2.png")
    assert (tmp_path / "fig2.png").stat().st_size > 1000
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(BUCKETS)

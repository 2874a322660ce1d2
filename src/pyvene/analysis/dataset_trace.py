"""Causal tracing over a dataset of facts (ROME, Meng et al. 2022, Figure 2).

:func:`trace_dataset` traces many ``(prompt, subject, target)`` records of any lengths as
packed jobs (:mod:`.packed`: rows of different prompts share batches), keeps ROME's filter
(a record whose clean greedy prediction is not the target is skipped and counted), and
averages the indirect effect ``p(restored) - p(corrupted)`` over records in ROME's six
position buckets (:data:`BUCKETS`) for each grid kind. Results stream to a run folder
(:mod:`.store`) and resume; records shard across ``torch.distributed`` ranks
(:mod:`.distributed`). Each record's grids equal :func:`.tracing.causal_trace` on it alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..interventions.basic import embedding_noise_level
from .dataset_run import run_dataset
from .metrics import token_probability
from .packed import Job, run_jobs
from .padded import last_logits
from .patching import component_cells, num_layers, split_grids, window_layers
from .plots import rome_panels
from .store import RunStore
from .tracing import (
    KINDS,
    TraceInputError,
    TraceResult,
    corrupt_embeddings,
    noised_from,
    trace_kinds,
    trace_prompt,
    trace_windows,
)

BUCKETS = (
    "first subject token",
    "middle subject tokens",
    "last subject token",
    "first subsequent token",
    "further tokens",
    "last token",
)


def bucket_positions(subject: tuple[int, int], n_tokens: int) -> list[list[int]]:
    """Token positions of each of ROME's buckets (an empty list: the record lacks it)."""
    lo, hi = subject
    last = n_tokens - 1
    return [
        [lo],
        list(range(lo + 1, hi - 1)),
        [hi - 1],
        [hi] if hi < n_tokens else [],
        list(range(hi + 1, last)),
        [last],
    ]


def load_records(source: str | os.PathLike[str] | Iterable[Any]) -> list[dict[str, str]]:
    """Records as dicts ``{"prompt", "subject", "target"}`` from a JSON-lines file or an
    iterable of dicts / ``(prompt, subject, target)`` tuples. ROME's ``known_1000`` fields
    (``attribute``) are accepted for ``target``."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        rows = list(source)
    out = []
    for i, row in enumerate(rows):
        if isinstance(row, (tuple, list)) and len(row) == 3:
            row = dict(zip(("prompt", "subject", "target"), row))
        if not isinstance(row, dict):
            raise TraceInputError(f"record {i}: expected a dict or (prompt, subject, target)")
        target = row.get("target", row.get("attribute"))
        missing = [k for k, v in (("prompt", row.get("prompt")), ("subject", row.get("subject")),
                                  ("target", target)) if not isinstance(v, str)]  # fmt: skip
        if missing:
            raise TraceInputError(f"record {i}: missing string field(s) {missing}: {row!r}")
        if not target.startswith(" ") and not row["prompt"].endswith(" "):
            target = " " + target  # ROME's attributes are stored without the leading space
        out.append({"prompt": row["prompt"], "subject": row["subject"], "target": target})
    return out


@dataclass
class DatasetTraceResult:
    """Per-record :class:`TraceResult` s (``traces``, with ``indices`` into the dataset) and
    the skipped records (``skipped``: index, prompt, reason)."""

    traces: list[TraceResult]
    indices: list[int]
    skipped: list[dict[str, Any]]
    layers: list[int]
    kinds: list[str]
    window: int
    samples: int
    noise_level: float
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def bucket_effects(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(aie, counts)``: the average indirect effect ``(6 buckets, layers)`` over the
        records that have each bucket, and how many records each bucket averages."""
        total = torch.zeros(len(BUCKETS), len(self.layers))
        counts = torch.zeros(len(BUCKETS), dtype=torch.long)
        for tr in self.traces:
            effect = tr.grids[kind].float() - tr.corrupted_prob  # (layers, tokens)
            for b, pos in enumerate(bucket_positions(tr.subject, len(tr.tokens))):
                if pos:
                    total[b] += effect[:, pos].mean(dim=1)
                    counts[b] += 1
        return total / counts.clamp(min=1)[:, None], counts

    @property
    def aie(self) -> dict[str, torch.Tensor]:
        """``{kind: (6, layers)}`` average indirect effect per bucket."""
        return {kind: self.bucket_effects(kind)[0] for kind in self.kinds}

    def plot(self, path: str | os.PathLike[str] | None = None) -> Any:
        """ROME's Figure 2 layout: one panel per kind, the six buckets as rows, layers as
        columns, colour = the average indirect effect; saved when ``path`` is given."""
        return rome_panels(
            {kind: aie.T for kind, aie in self.aie.items()}, list(BUCKETS), self.layers, window=self.window, label="AIE of p(target)",
            title="Average indirect effect: {}", size=(max(4.0, 0.18 * len(self.layers) + 3.5), 3.4),
            suptitle=f"{len(self.traces)} facts traced ({self.n_skipped} skipped: clean "
            f"prediction not the target), {self.samples} noise samples", path=path,
        )  # fmt: skip


def _params(records, samples, level, seed, window, kinds, layers, filter_correct) -> dict:
    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    return {
        "dataset_sha256": digest, "n_records": len(records), "samples": samples,
        "noise_level": level, "seed": seed, "window": window, "kinds": list(kinds),
        "layers": list(layers), "filter_correct": filter_correct,
    }  # fmt: skip


def trace_dataset(
    model: nn.Module,
    tokenizer: Any,
    records: str | os.PathLike[str] | Iterable[Any],
    *,
    samples: int = 10,
    noise: float = 3.0,
    noise_level: float | None = None,
    seed: int = 0,
    window: int = 10,
    kinds: Sequence[str] = KINDS,
    layers: Sequence[int] | None = None,
    filter_correct: bool = True,
    records_per_batch: int = 8,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    method: str = "auto",
    memory_budget: int = 1 << 29,
    on_batch: Callable[[list[int]], None] | None = None,
) -> DatasetTraceResult | None:
    """Causal traces of every record, packed ``records_per_batch`` prompts per job.

    ``records``: a JSON-lines path or records (see :func:`load_records`). Noise, window and
    kinds as :func:`.tracing.causal_trace` (each record uses the same ``seed``, so a record's
    grids equal ``causal_trace`` on it alone). ``filter_correct``: skip (and count) records
    whose clean greedy next token is not the target (ROME). ``out_dir``: write each batch as
    it finishes (:mod:`.store`) and skip the records already there (resume); the result is
    then read back from the folder. ``on_batch(indices)`` runs after each batch is stored.
    Under ``torch.distributed`` the records are sharded across ranks and the result is
    returned on rank 0 (None on the others).
    """
    records = load_records(records)
    kinds = trace_kinds(kinds)
    level = noise_level if noise_level is not None else embedding_noise_level(model, noise)
    n_layers = num_layers(model)
    layer_list = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    params = _params(records, samples, float(level), seed, window, kinds, layer_list,
                     filter_correct)  # fmt: skip
    ctx = dict(samples=samples, level=float(level), seed=seed, window=window, kinds=kinds,
               layers=layer_list, n_layers=n_layers, filter_correct=filter_correct,
               method=method, memory_budget=memory_budget)  # fmt: skip

    def process(batch: list[int]):
        return _trace_batch(model, tokenizer, records, batch, ctx)

    out = run_dataset(
        "trace", params, len(records), process, out_dir=out_dir,
        records_per_batch=records_per_batch, progress=progress, on_batch=on_batch,
        desc="tracing records",
    )  # fmt: skip
    return None if out is None else result_from_entries(*out, params)


def result_from_entries(entries, tensors, params) -> DatasetTraceResult:
    """Rebuild a :class:`DatasetTraceResult` from stored entries and tensors."""
    traces, indices, skipped = [], [], []
    for e in entries:
        if e["status"] != "ok":
            skipped.append({k: e[k] for k in ("index", "prompt", "reason")})
            continue
        grids = {kind: tensors[f"{e['index']}/{kind}"] for kind in params["kinds"]}
        traces.append(TraceResult(
            grids, e["tokens"], params["layers"], tuple(e["subject"]), e["target"],
            e["target_id"], e["clean_prob"], e["corrupted_prob"], params["samples"],
            params["noise_level"], params["window"], meta={"prompt": e["prompt"]},
        ))  # fmt: skip
        indices.append(int(e["index"]))
    return DatasetTraceResult(
        traces, indices, skipped, params["layers"], params["kinds"], params["window"],
        params["samples"], params["noise_level"], meta={"params": params},
    )  # fmt: skip


def load_trace_dataset(out_dir: str | os.PathLike[str]) -> DatasetTraceResult:
    """The result stored in a run folder (complete or not) by :func:`trace_dataset`."""
    meta = RunStore.read_meta(out_dir)
    store = RunStore(out_dir, "trace", meta["params"])
    store.open(write=False)
    return result_from_entries(*store.load(), meta["params"])


def _skip(index: int, record: dict, reason: str) -> dict[str, Any]:
    return {"index": index, "status": "skipped", "prompt": record["prompt"], "reason": reason}


@torch.no_grad()
def _trace_batch(model, tokenizer, records, batch, ctx):
    """Entries and grids of one batch of records, as one packed job."""
    device = model.get_input_embeddings().weight.device
    entries, jobs, kept, todo = [], [], [], []
    for i in batch:
        rec = records[i]
        try:
            todo.append((i, rec, *trace_prompt(
                tokenizer, rec["prompt"], rec["target"], rec["subject"], device
            )))  # fmt: skip
        except TraceInputError as exc:
            entries.append(_skip(i, rec, str(exc)))
    if ctx["filter_correct"] and todo:  # one left-padded forward for the whole batch
        logits = last_logits(model, [ids for _, _, ids, _, _ in todo])
        predicted = torch.stack(logits).argmax(-1).tolist()
    for n, (i, rec, ids, span, target_id) in enumerate(todo):
        if ctx["filter_correct"] and predicted[n] != target_id:
            word = tokenizer.convert_ids_to_tokens([predicted[n]])[0]
            entries.append(_skip(i, rec, f"clean prediction {word!r} is not the target"))
            continue
        corrupted = corrupt_embeddings(model, ids, span, ctx["samples"], ctx["level"], ctx["seed"])
        runs = {k: [window_layers(x, w, ctx["n_layers"]) for x in ctx["layers"]]
                for k, w in trace_windows(ctx["kinds"], ctx["window"]).items()}  # fmt: skip
        positions = range(ids.shape[1])
        cells = [c for k in ctx["kinds"] for c in component_cells(k, runs[k], positions)[0]]
        metric = token_probability(target_id)
        jobs.append(Job({"inputs_embeds": corrupted}, {"input_ids": ids}, cells, metric,
                        diff_start=noised_from(span)))  # fmt: skip
        kept.append((i, rec, ids, span, target_id))
    tensors: dict[str, torch.Tensor] = {}
    if jobs:
        results = run_jobs(model, jobs, method=ctx["method"], memory_budget=ctx["memory_budget"])
        for (i, rec, ids, span, target_id), (values, dirty, clean) in zip(kept, results):
            shape = (len(ctx["layers"]), ids.shape[1])
            grids = split_grids(values.cpu(), dict.fromkeys(ctx["kinds"], shape))
            tensors.update({f"{i}/{kind}": grid for kind, grid in grids.items()})
            entries.append({
                "index": i, "status": "ok", "prompt": rec["prompt"], "target": rec["target"],
                "target_id": target_id, "subject": list(span),
                "tokens": tokenizer.convert_ids_to_tokens(ids[0].tolist()),
                "clean_prob": clean, "corrupted_prob": dirty,
            })  # fmt: skip
    entries.sort(key=lambda e: e["index"])
    return entries, tensors

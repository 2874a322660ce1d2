"""Activation patching over a dataset of (base, source) pairs of varying lengths (IOI-style
studies), with positions aligned across pairs by name (``{"S1": 2, "S2": 9, "IO": 4,
"END": -1}``): the grid of each pair is ``(layers, names)`` (or ``(layers, heads[, names])``
for head components), and the result holds the per-pair grids and their mean. Pairs are
packed into shared batches (:mod:`.packed`), streamed to a run folder, resumable and sharded
across ``torch.distributed`` ranks (:mod:`.dataset_run`). Each pair's grid equals
:func:`.patching.patching_sweep` / :func:`.patching.head_sweep` on that pair alone at its
named positions."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import LocationError
from ..families import resolve_site
from .cells import Cell
from .dataset_run import run_dataset
from .metrics import logit_difference, token_probability
from .packed import Job, run_jobs
from .patching import SweepResult, num_layers, window_layers
from .store import RunStore
from .tracing import target_token_id


def load_pairs(source: str | os.PathLike[str] | Iterable[dict]) -> list[dict[str, Any]]:
    """Pairs from a JSON-lines file or an iterable of dicts with ``base`` and ``source``
    (text or token ids), ``positions`` (name -> token index, negative from the end) and,
    for the default metric, ``target`` (and ``foil``: logit difference) as text or id."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
    else:
        rows = list(source)
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "base" not in row or "source" not in row:
            raise LocationError(f"pair {i}: expected a dict with 'base' and 'source': {row!r}")
        if not isinstance(row.get("positions"), dict) or not row["positions"]:
            raise LocationError(
                f"pair {i}: 'positions' must map names to token indices, e.g. "
                "{'S1': 2, 'IO': 4, 'END': -1}"
            )
    names = list(rows[0]["positions"]) if rows else []
    for i, row in enumerate(rows):
        if list(row["positions"]) != names:
            raise LocationError(
                f"pair {i}: positions {list(row['positions'])} do not match pair 0's {names} "
                "(every pair names the same positions, in the same order)"
            )
    return rows


@dataclass
class DatasetSweepResult:
    """``per_example[comp]``: ``(pairs, layers, names)`` (head components: ``(pairs,
    layers, heads[, names])``); ``values[comp]``: their mean over pairs."""

    per_example: dict[str, torch.Tensor]
    names: list[str]
    layers: list[int]
    heads: list[int] | None
    base_values: torch.Tensor
    source_values: torch.Tensor
    indices: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def values(self) -> dict[str, torch.Tensor]:
        return {comp: grid.mean(dim=0) for comp, grid in self.per_example.items()}

    def __getitem__(self, component: str) -> torch.Tensor:
        return self.values[component]

    def normalized(self, component: str) -> torch.Tensor:
        """Mean over pairs of ``(value - base) / (source - base)`` (1 = fully restored)."""
        grid = self.per_example[component]
        shape = (-1,) + (1,) * (grid.dim() - 1)
        base, src = self.base_values.view(shape), self.source_values.view(shape)
        return ((grid - base) / (src - base)).mean(dim=0)

    def as_sweep_result(self) -> SweepResult:
        """The mean grids as a :class:`SweepResult` (for :func:`.plots.plot_sweep`)."""
        return SweepResult(
            self.values, self.layers, None, self.heads, float(self.base_values.mean()),
            float(self.source_values.mean()), tokens=list(self.names), meta=dict(self.meta),
        )  # fmt: skip


def patch_dataset(
    model: nn.Module,
    pairs: str | os.PathLike[str] | Iterable[dict],
    tokenizer: Any = None,
    metric: Callable[[torch.Tensor], torch.Tensor] | int | None = None,
    components: str | Sequence[str] = "block_output",
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    *,
    per_position: bool = False,
    window: int = 1,
    records_per_batch: int = 16,
    out_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    method: str = "auto",
    memory_budget: int = 1 << 29,
    on_batch: Callable[[list[int]], None] | None = None,
) -> DatasetSweepResult | None:
    """Restore each source activation into its base run at each named position, per pair.

    ``metric``: one callable for every pair, a token id, or None (each pair's ``target``,
    minus its ``foil`` when given). Head components (``head_*``) give ``(layers, heads)``
    grids over all named positions together, or ``(layers, heads, names)`` with
    ``per_position``. Streaming, resuming and distribution as
    :func:`.dataset_trace.trace_dataset`; the result is returned on rank 0.
    """
    pairs = load_pairs(pairs)
    comps = [components] if isinstance(components, str) else list(components)
    n_layers = num_layers(model)
    layer_list = list(range(n_layers)) if layers is None else [int(x) for x in layers]
    names = list(pairs[0]["positions"]) if pairs else []
    head_list = None
    for comp in comps:
        site = resolve_site(model, layer_list[0], comp)
        if site.is_head:
            head_list = list(range(site.heads)) if heads is None else [int(h) for h in heads]
    digest = hashlib.sha256(json.dumps(pairs, sort_keys=True).encode()).hexdigest()
    params = {
        "dataset_sha256": digest, "n_records": len(pairs), "components": comps,
        "layers": layer_list, "heads": head_list, "names": names,
        "per_position": per_position, "window": window,
        "metric": "pairs" if metric is None else getattr(metric, "__name__", str(metric)),
    }  # fmt: skip
    ctx = dict(comps=comps, layers=layer_list, heads=head_list, n_layers=n_layers,
               per_position=per_position, window=window, method=method,
               memory_budget=memory_budget)  # fmt: skip

    def process(batch: list[int]):
        return _patch_batch(model, tokenizer, pairs, batch, metric, ctx)

    out = run_dataset(
        "patch", params, len(pairs), process, out_dir=out_dir,
        records_per_batch=records_per_batch, progress=progress, on_batch=on_batch,
        desc="patching pairs",
    )  # fmt: skip
    return None if out is None else result_from_entries(*out, params)


def load_patch_dataset(out_dir: str | os.PathLike[str]) -> DatasetSweepResult:
    """The result stored in a run folder (complete or not) by :func:`patch_dataset`."""
    meta = RunStore.read_meta(out_dir)
    store = RunStore(out_dir, "patch", meta["params"])
    store.open(write=False)
    return result_from_entries(*store.load(), meta["params"])


def result_from_entries(entries, tensors, params) -> DatasetSweepResult:
    """Rebuild a :class:`DatasetSweepResult` from stored entries and tensors."""
    comps, idx = params["components"], [int(e["index"]) for e in entries]
    per = {c: torch.stack([tensors[f"{i}/{c}"] for i in idx]) if idx else torch.empty(0)
           for c in comps}  # fmt: skip
    return DatasetSweepResult(
        per, params["names"], params["layers"], params["heads"],
        torch.tensor([e["base_value"] for e in entries]),
        torch.tensor([e["source_value"] for e in entries]), idx, meta={"params": params},
    )  # fmt: skip


def _ids(tokenizer, value, what: str, index: int) -> torch.Tensor:
    if isinstance(value, str):
        if tokenizer is None:
            raise LocationError(f"pair {index}: {what} is text; pass a tokenizer")
        value = tokenizer(value)["input_ids"]
    return torch.as_tensor(value, dtype=torch.long).reshape(1, -1)


def _token(tokenizer, value) -> int:
    return int(value) if not isinstance(value, str) else target_token_id(tokenizer, value)


def _pair_metric(tokenizer, pair, metric, index):
    if metric is not None:
        return token_probability(metric) if isinstance(metric, int) else metric
    if "target" not in pair:
        raise LocationError(f"pair {index}: no 'target' (and no metric given)")
    good = _token(tokenizer, pair["target"])
    if pair.get("foil") is None:
        return token_probability(good)
    return logit_difference(good, _token(tokenizer, pair["foil"]))


def _cells(comp, site, positions, ctx) -> tuple[list[Cell], tuple[int, ...]]:
    """The cells of one component for one pair, in grid order, and the grid shape."""
    cells = []
    layers = [window_layers(x, ctx["window"], ctx["n_layers"]) for x in ctx["layers"]]
    if site.is_head:
        for lays in layers:
            for h in ctx["heads"]:
                if ctx["per_position"]:
                    cells.extend(Cell(comp, lays, (p,), h) for p in positions)
                else:
                    cells.append(Cell(comp, lays, tuple(positions), h))
        shape = (len(layers), len(ctx["heads"]))
        return cells, shape + ((len(positions),) if ctx["per_position"] else ())
    cells = [Cell(comp, lays, (p,)) for lays in layers for p in positions]
    return cells, (len(layers), len(positions))


@torch.no_grad()
def _patch_batch(model, tokenizer, pairs, batch, metric, ctx):
    device = model.get_input_embeddings().weight.device
    jobs, shapes, entries = [], [], []
    for i in batch:
        pair = pairs[i]
        base = _ids(tokenizer, pair["base"], "base", i).to(device)
        src = _ids(tokenizer, pair["source"], "source", i).to(device)
        seq = base.shape[1]
        if src.shape[1] != seq:
            raise LocationError(
                f"pair {i}: base and source have {seq} and {src.shape[1]} tokens; a pair's "
                "prompts must have the same length (pairs may differ from each other)"
            )
        positions = []
        for name, p in pair["positions"].items():
            if not -seq <= int(p) < seq:
                raise LocationError(f"pair {i}: position {name}={p} outside its {seq} tokens")
            positions.append(int(p) % seq)
        cells, pair_shapes = [], []
        for comp in ctx["comps"]:
            c, shape = _cells(comp, resolve_site(model, ctx["layers"][0], comp), positions, ctx)
            cells.extend(c)
            pair_shapes.append(shape)
        jobs.append(Job(base, src, cells, _pair_metric(tokenizer, pair, metric, i)))
        shapes.append(pair_shapes)
        entries.append({"index": i, "positions": positions})
    results = run_jobs(model, jobs, method=ctx["method"], memory_budget=ctx["memory_budget"])
    tensors = {}
    for entry, pair_shapes, (values, base_value, src_value) in zip(entries, shapes, results):
        values, at = values.cpu(), 0
        for comp, shape in zip(ctx["comps"], pair_shapes):
            n = int(torch.tensor(shape).prod())
            tensors[f"{entry['index']}/{comp}"] = values[at : at + n].reshape(shape).clone()
            at += n
        entry.update(base_value=base_value, source_value=src_value)
    return entries, tensors

"""The layer-stack fast path (sweeps, causal tracing, packed jobs) follows each layer's device.

A fake device map, answered through the one function that says where a module runs
(``devices.module_device``), puts layers 1 and 3 of a 4-layer Llama on ``FAR``: a second
CPU-backed device object (``cpu:0``), whose "transfers" (every copy goes through
``devices.to_device``) are recorded and return a fresh clone. Plain forward pre-hooks on the
layers then see whether each layer got the copy of the mask / rotary table / positions / cache
that lives on its own device, and the recorded transfers show each per-call table moved once
per device per chunk, not once per layer. Results equal the unplaced run bit for bit.
Offloaded models (accelerate ``cpu_offload`` / disk offload) give the plain model's stack
results bit for bit, and the whole-model results to float reassociation."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_llama, offloaded_llama

from pyvene import devices
from pyvene.analysis import patching_sweep
from pyvene.analysis.cells import Cell
from pyvene.analysis.packed import Job, run_jobs
from pyvene.analysis.stack import PrefixKV

FAR = torch.device("cpu", 0)  # != torch.device("cpu"), yet CPU-backed
FAR_LAYERS = (1, 3)


def logit7(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7].float() - logits.float().mean(-1)


class FakeMap:
    """Layers ``FAR_LAYERS`` (and everything inside them) run on ``FAR``; records every
    transfer and what each layer is called with."""

    def __init__(self, model, monkeypatch) -> None:
        self.model = model
        far = [model.model.layers[i] for i in FAR_LAYERS]
        self.far_ids = {id(m) for m in far}
        self.copies: dict[int, torch.Tensor] = {}  # id(copy) -> copy (kept alive)
        self.moves: list[tuple[int, torch.device]] = []  # (id(source), device)
        self.sources: list[torch.Tensor] = []  # kept alive: their ids stay unique
        self.calls: list[tuple[int, dict]] = []  # (layer, {argument: tensor})
        real_device, real_move = devices.module_device, devices.to_device

        def module_device(module, ancestors=()):
            if any(id(m) in self.far_ids for m in (module, *ancestors)):
                return FAR
            return real_device(module, ancestors)

        def to_device(value, device):
            if device != FAR or not isinstance(value, torch.Tensor):
                return real_move(value, device)
            copy = value.clone()
            self.copies[id(copy)] = copy
            self.moves.append((id(value), device))
            self.sources.append(value)
            return copy

        monkeypatch.setattr(devices, "module_device", module_device)
        monkeypatch.setattr(devices, "to_device", to_device)
        self.handles = [
            layer.register_forward_pre_hook(self._record(i), with_kwargs=True)
            for i, layer in enumerate(model.model.layers)
        ]

    def _record(self, index):
        def pre(module, args, kwargs):
            cache = next(v for k, v in kwargs.items() if k in ("cache", "past_key_values"))
            if not isinstance(cache, PrefixKV):
                return  # a whole-model run (the sweep's base / source collection)
            cos, sin = kwargs["position_embeddings"]
            got = {"hidden": args[0], "mask": kwargs["attention_mask"], "cos": cos, "sin": sin,
                   "pos": kwargs["position_ids"], "keys": cache.keys, "values": cache.values}  # fmt: skip
            self.calls.append((index, got))

        return pre

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def is_far(self, t: torch.Tensor) -> bool:
        """``t`` is (a view of) a copy made for ``FAR``."""
        return id(t) in self.copies or id(_base(t)) in self.copies


def _base(t: torch.Tensor) -> torch.Tensor:
    return t if t._base is None else t._base


def _check_placement(fake: FakeMap) -> None:
    assert fake.calls and {i for i, _ in fake.calls} >= set(FAR_LAYERS)
    for index, got in fake.calls:
        on_far = index in FAR_LAYERS
        for name, tensor in got.items():
            if name == "hidden" or (name in ("keys", "values") and tensor.shape[2] == 0):
                continue  # an empty prefix is never read; hidden may be a cat of copies
            assert fake.is_far(tensor) == on_far, (index, name)
    # no tensor was sent to one device twice: the tables were moved once per chunk, not once
    # per layer (two FAR layers each chunk, one copy of each table)
    assert len(fake.moves) == len(set(fake.moves))
    tables = [id(_base(got[n])) for i, got in fake.calls if i in FAR_LAYERS for n in ("cos", "sin")]
    assert len(set(tables)) < len(tables)  # the FAR layers of one chunk share one copy


@pytest.fixture()
def pair():
    return make_llama(seed=5, n_layer=4), make_llama(seed=5, n_layer=4)


def test_sweep_tables_go_to_each_layers_device(pair, monkeypatch):
    plain, placed = pair
    base, source = ids(2, 6, 1), ids(1, 6, 2)
    comps = ["block_output", "mlp_output", "attention_output"]
    with torch.no_grad():
        want = patching_sweep(plain, base, source, logit7, comps, method="stack", progress=False)
    fake = FakeMap(placed, monkeypatch)
    try:
        with torch.no_grad():
            got = patching_sweep(placed, base, source, logit7, comps, method="stack",
                                 progress=False)  # fmt: skip
    finally:
        fake.remove()
    _check_placement(fake)
    for comp in comps:
        assert torch.equal(got[comp], want[comp])
        assert got[comp].std() > 1e-3


def _jobs() -> list[Job]:
    jobs = []
    for seq, nb in ((5, 2), (8, 1), (6, 2)):
        g = torch.Generator().manual_seed(seq)
        base = torch.randint(1, 50, (nb, seq), generator=g)
        source = base[:1].clone()
        source[:, seq // 2 :] = torch.randint(1, 50, (1, seq - seq // 2), generator=g)
        cells = [Cell(c, (k,), (p,)) for c in ("block_output", "mlp_output") for k in (0, 2, 3)
                 for p in range(seq)]  # fmt: skip
        jobs.append(Job(base, source, cells, logit7))
    return jobs


def test_packed_jobs_tables_go_to_each_layers_device(pair, monkeypatch):
    plain, placed = pair
    jobs = _jobs()
    with torch.no_grad():
        want = run_jobs(plain, jobs, method="stack")
    fake = FakeMap(placed, monkeypatch)
    try:
        with torch.no_grad():
            got = run_jobs(placed, jobs, method="stack")
    finally:
        fake.remove()
    _check_placement(fake)
    for (a, ab, asrc), (b, bb, bsrc) in zip(got, want):
        assert torch.equal(a, b) and ab == bb and asrc == bsrc
        assert (a - ab).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["cpu", "disk"])
def test_offloaded_stack_equals_plain_stack_and_whole_model(kind, tmp_path):
    plain, off = make_llama(seed=11), offloaded_llama(kind, tmp_path)
    base, source = ids(2, 6, 3), ids(1, 6, 4)
    jobs = _jobs()[:2]
    for job in jobs:
        job.cells[:] = [c for c in job.cells if c.layers[0] < 3]
    out = {}
    with torch.no_grad():
        for name, model in (("plain", plain), ("off", off)):
            for method in ("stack", "full"):
                sweep = patching_sweep(model, base, source, logit7, "block_output",
                                       method=method, progress=False)  # fmt: skip
                packed = run_jobs(model, jobs, method=method)
                out[name, method] = (sweep["block_output"], [p[0] for p in packed])
    a, b = out["plain", "stack"], out["off", "stack"]
    assert torch.equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1]))
    a, b = out["plain", "full"], out["off", "full"]
    assert torch.equal(a[0], b[0]) and all(torch.equal(x, y) for x, y in zip(a[1], b[1]))
    stack, full = out["off", "stack"], out["off", "full"]
    torch.testing.assert_close(stack[0], full[0], atol=1e-5, rtol=0)
    for x, y in zip(stack[1], full[1]):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)

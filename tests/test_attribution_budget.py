"""The gradient pass's memory budget and progress bar: a small budget splits the layers into
chunks (one base + source forward and backward each, counted with a plain hook) without
changing any estimate; the bar's ticks add up to its total and it is closed."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_llama

from pyvene.analysis.attribution import attribution_patching

COMPS = ["block_output", "mlp_activation", "head_attention_value_output", "head_key_output"]


def metric(logits: torch.Tensor) -> torch.Tensor:
    return 100 * (logits[:, 7] - logits[:, 3])


def per_layer_bytes(model, batch: int, source_rows: int, seq: int) -> int:
    """Closed form of one layer's kept site tensors for COMPS (float32): joined activations
    and gradients (base + source rows) plus stacked difference, gradient and product."""
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    widths = [cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads * head_dim,
              cfg.num_key_value_heads * head_dim]  # fmt: skip
    rows = 2 * (batch + source_rows) + 3 * batch
    return 4 * rows * seq * sum(widths)


@pytest.mark.parametrize("method", ["atp", "atp*"])
def test_small_budget_chunks_layers_with_the_same_estimates(method):
    model = make_llama(n_layer=3)
    base, source = ids(2, 6, seed=1), ids(2, 6, seed=2)
    calls = {"n": 0}
    handle = model.register_forward_pre_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    try:
        results = []
        per_layer = per_layer_bytes(model, 2, 2, 6)
        for budget, chunks in ((1 << 30, 1), (2 * per_layer, 2), (per_layer, 3), (1, 3)):
            calls["n"] = 0
            results.append(attribution_patching(model, base, source, metric, COMPS,
                                                method=method, memory_budget=budget,
                                                progress=False))  # fmt: skip
            # per chunk one joined base + source forward; under GradDrop a separate source
            # forward (the QK fix reruns attention modules only)
            passes = 2 if method == "atp*" else 1
            assert calls["n"] == chunks * passes, (budget, calls["n"])
    finally:
        handle.remove()
    for res in results[1:]:
        for comp in COMPS:
            torch.testing.assert_close(res[comp], results[0][comp], rtol=0, atol=1e-6)


class Recorder:
    """Stand-in for tqdm: records the total, the ticks and the close."""

    made: list[Recorder] = []

    def __init__(self, total=None, **kwargs):
        self.total, self.n, self.closed = total, 0, False
        Recorder.made.append(self)

    def update(self, n=1):
        self.n += n

    def close(self):
        self.closed = True


@pytest.mark.parametrize("method,budget,total", [
    ("atp", 1 << 30, 1),  # one pass
    ("atp", 1, 3),  # one pass per layer
    ("atp*", 1 << 30, 1 + 3 + 3),  # pass, 3 GradDrop layers, 3 QK-fix layers
    ("atp*", 1, 3 * (1 + 3) + 3),
])  # fmt: skip
def test_progress_bar_counts_every_pass(monkeypatch, method, budget, total):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    monkeypatch.setattr(tqdm_auto, "tqdm", Recorder)
    Recorder.made = []
    model = make_llama(n_layer=3)
    attribution_patching(model, ids(1, 5, seed=3), ids(1, 5, seed=4), metric, COMPS,
                         method=method, memory_budget=budget)  # fmt: skip
    bar = Recorder.made[0]
    assert (bar.total, bar.n, bar.closed) == (total, total, True)
    Recorder.made = []
    attribution_patching(model, ids(1, 5, seed=3), ids(1, 5, seed=4), metric, COMPS,
                         method=method, progress=False)  # fmt: skip
    assert Recorder.made == []

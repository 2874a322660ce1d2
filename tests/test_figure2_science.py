"""ROME's Figure 2 on the bundled SmolLM2, from the committed run over examples/facts.jsonl
(examples/figure2_run: meta.json + safetensors, written by examples/dataset_tracing.py).

The stored run is checked two ways: one of its records is traced again here and must equal
the stored grids (so the folder is what the code computes, not a hand-made file), and the
average indirect effect over every fact the model knows shows ROME's structure: restoring
the last subject token in early/middle layers and the last token in late layers recovers far
more of p(target) than restoring the tokens in between.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pyvene.analysis.dataset_trace import BUCKETS, load_trace_dataset, trace_dataset

RUN = Path(__file__).resolve().parents[1] / "examples" / "figure2_run"
FACTS = Path(__file__).resolve().parents[1] / "examples" / "facts.jsonl"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stored():
    return load_trace_dataset(RUN)


def test_run_covers_50_known_facts_and_counts_the_rest(stored):
    records = [json.loads(line) for line in FACTS.read_text().splitlines() if line.strip()]
    assert len(stored.traces) >= 50
    assert len(stored.traces) + stored.n_skipped == len(records)
    # ROME's filter, or a target that is not one token of this tokenizer
    assert all(
        "not the target" in s["reason"] or "not one token" in s["reason"] for s in stored.skipped
    )
    assert sum("not the target" in s["reason"] for s in stored.skipped) >= 20
    assert stored.kinds == ["block_output", "mlp_output", "attention_output"]


def _max(aie: torch.Tensor, name: str, layers: slice = slice(None)) -> float:
    return float(aie[BUCKETS.index(name)][layers].max())


def test_average_indirect_effect_has_romes_sites(stored):
    """ROME's Figure 2 findings, as ratios of the average indirect effect (max over layers)."""
    aie, _ = stored.bucket_effects("block_output")
    n = aie.shape[1]
    early_mid, late, early = slice(0, 2 * n // 3), slice(n // 2, n), slice(0, n // 3)
    subject = _max(aie, "last subject token", early_mid)
    # hidden states: the last subject token in early/middle layers ...
    assert subject > 3 * _max(aie, "first subsequent token", early_mid)
    assert subject > 3 * _max(aie, "further tokens")
    assert subject > _max(aie, "first subject token") and subject > _max(
        aie, "middle subject tokens"
    )
    # ... and the last token in late layers, where its early layers do nothing
    last = _max(aie, "last token", late)
    assert last > 3 * _max(aie, "further tokens") and last > 3 * _max(aie, "last token", early)
    # MLPs: at the last subject token (early/middle), not at the last token
    mlp, _ = stored.bucket_effects("mlp_output")
    mlp_subject = _max(mlp, "last subject token", early_mid)
    assert mlp_subject > 3 * max(_max(mlp, "first subsequent token"), _max(mlp, "further tokens"))
    assert mlp_subject > 2 * _max(mlp, "last token")
    # attention: at the last token, not on the subject
    attn, _ = stored.bucket_effects("attention_output")
    subject_attn = max(_max(attn, b) for b in BUCKETS[:3])
    assert _max(attn, "last token") > 3 * subject_attn


def test_stored_records_equal_a_fresh_trace(stored):
    """A stored record traced again alone with the run's parameters: the same grids."""
    from pyvene.zoo import MissingModelPackageError, load_smollm2

    try:
        model, tokenizer = load_smollm2()
    except MissingModelPackageError as exc:
        pytest.skip(str(exc))
    params = stored.meta["params"]
    records = [json.loads(line) for line in FACTS.read_text().splitlines() if line.strip()]
    picked = stored.indices[-1:]  # the last batch of the run: packed with others there
    fresh = trace_dataset(
        model, tokenizer, [records[i] for i in picked], samples=params["samples"],
        noise_level=params["noise_level"], seed=params["seed"], window=params["window"],
        kinds=params["kinds"], progress=False,
    )  # fmt: skip
    for trace, index in zip(fresh.traces, picked):
        want = stored.traces[stored.indices.index(index)]
        for kind in params["kinds"]:
            torch.testing.assert_close(trace.grids[kind], want.grids[kind], rtol=1e-4, atol=1e-5)

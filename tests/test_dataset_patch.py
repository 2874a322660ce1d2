"""Dataset patching: pairs of varying lengths with named positions, packed; each pair's grid
equals patching_sweep / head_sweep on that pair alone; mean grids; run folders."""

from __future__ import annotations

import pytest
import torch
from conftest import VOCAB, make_gpt2, make_llama

from pyvene.analysis import head_sweep, logit_difference, patching_sweep
from pyvene.analysis.dataset_patch import load_patch_dataset, patch_dataset
from pyvene.errors import LocationError


def _pairs(n: int = 4) -> list[dict]:
    g = torch.Generator().manual_seed(5)
    pairs = []
    for i in range(n):
        seq = 6 + 2 * (i % 3)
        base = torch.randint(1, VOCAB, (seq,), generator=g)
        src = base.clone()
        s1, io = 1 + i % 2, 3 + i % 2
        src[s1] = (base[s1] + 7) % VOCAB  # a name swap: source differs at S1 and S2
        src[seq - 2] = (base[seq - 2] + 3) % VOCAB
        pairs.append({
            "base": base.tolist(), "source": src.tolist(), "target": 5 + i, "foil": 9,
            "positions": {"S1": s1, "IO": io, "S2": seq - 2, "END": -1},
        })  # fmt: skip
    return pairs


@pytest.mark.parametrize("make,method", [(make_llama, "auto"), (make_gpt2, "auto"),
                                         (make_llama, "full")])  # fmt: skip
def test_pairs_equal_per_pair_sweeps(make, method):
    model, pairs = make(), _pairs()
    comps = ["block_output", "mlp_output", "head_attention_value_output"]
    res = patch_dataset(model, pairs, components=comps, window=2, method=method,
                        progress=False, records_per_batch=3)  # fmt: skip
    assert res.names == ["S1", "IO", "S2", "END"] and res.indices == [0, 1, 2, 3]
    for i, pair in enumerate(pairs):
        base, src = torch.tensor([pair["base"]]), torch.tensor([pair["source"]])
        metric = logit_difference(pair["target"], pair["foil"])
        pos = list(pair["positions"].values())
        want = patching_sweep(model, base, src, metric, comps[:2], positions=pos, window=2,
                              progress=False)  # fmt: skip
        heads = head_sweep(model, base, src, metric, positions=pos, window=2, progress=False)
        for comp in comps[:2]:
            torch.testing.assert_close(res.per_example[comp][i], want[comp], atol=1e-5, rtol=0)
        got = res.per_example[comps[2]][i]
        torch.testing.assert_close(got, heads[comps[2]], atol=1e-5, rtol=0)
        assert res.base_values[i] == pytest.approx(want.base_value, abs=1e-5)
        assert res.source_values[i] == pytest.approx(want.source_value, abs=1e-5)
    for comp in comps:
        torch.testing.assert_close(res[comp], res.per_example[comp].mean(0))
    norm = res.normalized("block_output")
    b, s = res.base_values.view(-1, 1, 1), res.source_values.view(-1, 1, 1)
    torch.testing.assert_close(norm, ((res.per_example["block_output"] - b) / (s - b)).mean(0))


def test_head_by_position_and_folder(tmp_path):
    model, pairs = make_llama(), _pairs(3)
    comp = "head_attention_value_output"
    opts = dict(components=comp, layers=[0, 2], heads=[1, 3], per_position=True,
                progress=False, records_per_batch=2)  # fmt: skip
    res = patch_dataset(model, pairs, out_dir=tmp_path, **opts)
    assert res.per_example[comp].shape == (3, 2, 2, 4)
    pair = pairs[2]
    want = head_sweep(model, torch.tensor([pair["base"]]), torch.tensor([pair["source"]]),
                      logit_difference(pair["target"], pair["foil"]), [0, 2], [1, 3],
                      list(pair["positions"].values()), per_position=True, progress=False)  # fmt: skip
    torch.testing.assert_close(res.per_example[comp][2], want[comp], atol=1e-5, rtol=0)
    again = load_patch_dataset(tmp_path)
    torch.testing.assert_close(again.per_example[comp], res.per_example[comp], atol=0, rtol=0)
    assert again.names == res.names and again.heads == [1, 3]


def test_bad_pairs_are_errors():
    model, pairs = make_gpt2(), _pairs(2)
    pairs[1]["source"] = pairs[1]["source"][:-1]
    with pytest.raises(LocationError, match="pair 1: base and source"):
        patch_dataset(model, pairs, progress=False)
    pairs = _pairs(2)
    pairs[1]["positions"] = {"S1": 1, "END": -1}
    with pytest.raises(LocationError, match="do not match pair 0"):
        patch_dataset(model, pairs, progress=False)
    pairs = _pairs(2)
    pairs[0]["positions"]["S1"] = 40
    with pytest.raises(LocationError, match="S1=40"):
        patch_dataset(model, pairs, progress=False)

"""Attribution patching on the bundled SmolLM2 and its IOI pair ("...Mary gave a bottle to"
predicts " John"): AtP* against the exact head grid, and per-position MLP-neuron attribution
with its top cells verified exactly (and checked against plain-hook runs)."""

from __future__ import annotations

import pytest
import torch
from conftest import hooked

from pyvene.analysis import head_sweep, logit_difference
from pyvene.analysis.attribution import attribution_patching
from pyvene.analysis.attribution_verify import spearman, top_k_recall
from pyvene.analysis.tracing import target_token_id

pytestmark = pytest.mark.slow

CLEAN = "When John and Mary went to the store, Mary gave a bottle to"
CORRUPT = "When John and Mary went to the store, John gave a bottle to"


@pytest.fixture(scope="module")
def ioi():
    zoo = pytest.importorskip("pyvene.zoo")
    try:
        model, tok = zoo.load_smollm2()
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    clean = tok(CLEAN, return_tensors="pt")["input_ids"]
    corrupt = tok(CORRUPT, return_tensors="pt")["input_ids"]
    metric = logit_difference(target_token_id(tok, " John"), target_token_id(tok, " Mary"))
    return model, clean, corrupt, metric


def test_atp_star_ranks_heads_like_the_exact_grid(ioi):
    model, clean, corrupt, metric = ioi
    comp = "head_attention_value_output"
    res = attribution_patching(model, corrupt, clean, metric, comp, method="atp*",
                               progress=False)  # fmt: skip
    exact = head_sweep(model, corrupt, clean, metric, progress=False)
    want = exact[comp] - exact.base_value  # effects, as the attribution estimates them
    est = res[comp]
    assert est.shape == want.shape == (30, 9)
    assert res.base_value == pytest.approx(exact.base_value, abs=1e-4)
    assert spearman(est, want) >= 0.9
    assert top_k_recall(est, want, 10, 20) == 1.0  # exact top-10 heads in the estimate's top-20


def test_neuron_attribution_per_position_top20_verified(ioi):
    model, clean, corrupt, metric = ioi
    res = attribution_patching(model, corrupt, clean, metric, "mlp_activation",
                               per_position=True, verify=20, progress=False)  # fmt: skip
    grid = res["mlp_activation"]
    seq = clean.shape[1]
    assert tuple(grid.shape) == (30, 1536, seq)
    ver = res.verification["mlp_activation"]
    assert len(ver.cells) == 20 and torch.isfinite(ver.exact).all()
    torch.testing.assert_close(ver.estimate.abs(), grid.abs().flatten().topk(20).values)
    # the shared prefix "When John and Mary went to the store," is identical: no effect there
    assert grid[:, :, :9].abs().max() <= 1e-4 * grid.abs().max()
    # three verified cells against plain-hook runs (an independent exact computation)
    site = model.model.layers
    for idx, exact in list(zip(ver.cells, ver.exact))[:3]:
        layer, neuron, pos = res.layers[idx[0]], idx[1], res.positions[idx[2]]
        act = site[layer].mlp.act_fn
        kept = {}
        h = hooked(act, "output", lambda t: kept.__setitem__("a", t[:, pos, neuron].clone()))
        with torch.no_grad():
            model(clean)
        h.remove()

        def put(t):
            t = t.clone()
            t[:, pos, neuron] = kept["a"]
            return t

        h = hooked(act, "output", put)
        with torch.no_grad():
            patched = metric(model(corrupt).logits[:, -1]).item()
        h.remove()
        assert exact.item() == pytest.approx(patched - res.base_value, abs=1e-4)
    assert ver.sign_agreement >= 0.8

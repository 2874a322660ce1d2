"""Rows that patch only positions before the first input difference are not computed
(:mod:`pyvene.analysis.noop`): grids equal per-cell runs written with plain torch hooks, and
the rows actually run (batch rows through the last layer, counted by a hook) are the
closed-form number. The bitwise no-op check of :func:`.planning.plan_rows` is switched off
(``no_bitwise``) so that only the structural rule can skip."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_gpt2, make_llama
from transformers import BertConfig, BertForMaskedLM

from pyvene.analysis import causal_trace, head_sweep, patching_sweep
from pyvene.analysis import cells as cells_mod
from pyvene.analysis.dataset_trace import trace_dataset
from pyvene.analysis.noop import diff_starts, token_diff_starts

zoo = pytest.importorskip("pyvene.zoo")
KINDS = ("block_output", "mlp_output", "attention_output")


def logit7(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, 7] - logits.mean(-1)


@pytest.fixture
def no_bitwise(monkeypatch):
    """Every source activation counts as different from the base run's."""

    def differs(self, src, base):
        b, p = max(src.shape[0], base.shape[0]), base.shape[1]
        heads = None if self.heads is None else [[[True] * self.heads] * p] * b
        return [[True] * p] * b, heads

    monkeypatch.setattr(cells_mod.SweepSite, "differs", differs)


def _layers(model):
    if hasattr(model, "transformer"):
        return model.transformer.h
    if hasattr(model, "bert"):
        return model.bert.encoder.layer
    return model.model.layers


class RowCounter:
    """Batch rows entering the model's last layer (every computed row passes it once)."""

    def __init__(self, model):
        self.rows = 0

        def pre(mod, args, kwargs):
            self.rows += int((args[0] if args else kwargs["hidden_states"]).shape[0])

        self.handle = _layers(model)[-1].register_forward_pre_hook(pre, with_kwargs=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _site(model, comp, layer):
    block = _layers(model)[layer]
    attn = getattr(block, "self_attn", None) or getattr(block, "attn", None)
    if comp == "head_attention_value_output":
        return block.self_attn.o_proj, "in"
    if comp == "block_output":
        return block, "out"
    return (block.mlp if comp == "mlp_output" else attn), "out"


def plain_cell(model, base, source, comp, layers, positions, metric, head=None, hd=None):
    """One cell by hand: capture the source at ``layers``, overwrite the base run there."""

    def cols(t):
        return slice(None) if head is None else slice(head * hd, (head + 1) * hd)

    def first(x):
        return x[0] if isinstance(x, tuple) else x

    def put(x, new):
        return (new, *x[1:]) if isinstance(x, tuple) else new

    caught, handles = {}, []
    for k in layers:
        mod, side = _site(model, comp, k)
        if side == "out":
            handles.append(
                mod.register_forward_hook(
                    lambda m, a, o, k=k: caught.__setitem__(k, first(o).detach().clone())
                )
            )
        else:
            handles.append(mod.register_forward_pre_hook(
                lambda m, a, k=k: caught.__setitem__(k, a[0].detach().clone())))  # fmt: skip
    with torch.no_grad():
        model(**source)
    for h in handles:
        h.remove()
    handles = []

    def patched(t, k):
        t = t.clone()
        for p in positions:
            t[:, p, cols(t)] = caught[k][:, p, cols(t)]
        return t

    for k in layers:
        mod, side = _site(model, comp, k)
        if side == "out":
            handles.append(
                mod.register_forward_hook(lambda m, a, o, k=k: put(o, patched(first(o), k)))
            )
        else:
            handles.append(mod.register_forward_pre_hook(
                lambda m, a, k=k: (patched(a[0], k), *a[1:])))  # fmt: skip
    try:
        with torch.no_grad():
            return metric(model(**base).logits[:, -1]).float().mean().item()
    finally:
        for h in handles:
            h.remove()


def shared_prefix(seq=7):
    """Base row 0 shares 3 tokens with the source, row 1 one token."""
    source = ids(1, seq, seed=21)["input_ids"]
    base = ids(2, seq, seed=22)["input_ids"]
    base[0, :3], base[1, :1] = source[0, :3], source[0, :1]
    assert (base[:, 3] != source[0, 3]).all() and (base[1, 1] != source[0, 1])
    return {"input_ids": base}, {"input_ids": source}


def test_token_diff_starts_closed_form():
    base, source = shared_prefix()
    assert token_diff_starts(base, source) == [3, 1]
    same = {"input_ids": source["input_ids"].expand(2, -1)}
    assert token_diff_starts(same, source) == [7, 7]
    assert token_diff_starts({"inputs_embeds": torch.zeros(1, 7, 4)}, source) is None


@pytest.mark.parametrize("method", ["auto", "full"])
@pytest.mark.parametrize("make", [make_llama, make_gpt2])
def test_shared_prefix_sweep(no_bitwise, make, method):
    model = make(n_layer=3)
    base, source = shared_prefix()
    with RowCounter(model) as count:
        res = patching_sweep(model, base, source, logit7, KINDS, method=method, progress=False)
    cells = len(KINDS) * 3 * 7
    skipped = len(KINDS) * 3 * (3 + 1)  # cells before each row's first difference
    assert count.rows - 3 == cells * 2 - skipped  # minus the source (1) and base (2) runs
    for comp in KINDS:
        want = [[plain_cell(model, base, source, comp, (k,), (p,), logit7) for p in range(7)]
                for k in range(3)]  # fmt: skip
        torch.testing.assert_close(res[comp], torch.tensor(want), atol=1e-5, rtol=0)


def test_head_sweep(no_bitwise):
    model = make_llama(n_layer=3)
    base, source = shared_prefix()
    hd = model.config.head_dim
    with RowCounter(model) as count:
        res = head_sweep(model, base, source, logit7, per_position=True, progress=False)
    assert count.rows - 3 == 3 * 4 * 7 * 2 - 3 * 4 * (3 + 1)
    grid = res["head_attention_value_output"]
    want = [[[plain_cell(model, base, source, "head_attention_value_output", (k,), (p,), logit7,
                         h, hd) for p in range(7)] for h in range(4)] for k in range(3)]  # fmt: skip
    torch.testing.assert_close(grid, torch.tensor(want), atol=1e-5, rtol=0)
    with RowCounter(model) as count:  # all positions together: never skipped
        head_sweep(model, base, source, logit7, progress=False)
    assert count.rows - 3 == 3 * 4 * 2


def _tiny(kind):
    try:
        make = zoo.create_llama if kind == "llama" else zoo.create_gpt2_lm
        _, tok, model = make(seed=1, with_tokenizer=True)
    except zoo.MissingModelPackageError as exc:
        pytest.skip(str(exc))
    return model, tok


def noised(model, ids_, span, samples, level, seed):
    """The clean embeddings with ``level * N(0, 1)`` (torch.Generator seeded ``seed``) added
    at the subject tokens: the trace's corrupted inputs, written out."""
    emb = model.get_input_embeddings().weight[ids_[0]]
    noise = torch.randn(samples, span[1] - span[0], emb.shape[-1],
                        generator=torch.Generator().manual_seed(seed)) * level  # fmt: skip
    out = emb.expand(samples, -1, -1).clone()
    out[:, span[0] : span[1]] += noise
    return out


def check_trace(res, model, tok, prompt, samples, level, seed, window):
    """Every cell of ``res`` equals its plain-hook run on the noised embeddings."""
    ids_ = torch.tensor([tok(prompt)["input_ids"]])
    prob = lambda logits: logits.softmax(-1)[:, res.target_id]  # noqa: E731
    base = {"inputs_embeds": noised(model, ids_, res.subject, samples, level, seed)}
    n, seq = len(res.layers), ids_.shape[1]
    for kind in KINDS:
        w = 1 if kind == "block_output" else window
        for layer in range(n):
            lays = tuple(range(max(0, layer - w // 2), min(n, layer - (-w // 2))))
            want = [plain_cell(model, base, {"input_ids": ids_}, kind, lays, (p,), prob)
                    for p in range(seq)]  # fmt: skip
            torch.testing.assert_close(res.grids[kind][layer], torch.tensor(want), atol=1e-5,
                                       rtol=0)  # fmt: skip
    return seq


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_causal_trace_skips_before_subject(no_bitwise, kind):
    model, tok = _tiny(kind)
    prompt, opts = "The capital of France is", dict(noise_level=0.5, seed=4, window=2)
    with RowCounter(model) as count:
        res = causal_trace(model, tok, prompt, " Paris", "France", samples=3, progress=False,
                           **opts)  # fmt: skip
    seq = check_trace(res, model, tok, prompt, 3, 0.5, 4, 2)
    start, n = res.subject[0], len(res.layers)
    assert start > 0  # the subject is not at the start
    cells = len(KINDS) * n * seq
    ran = count.rows - (1 + 3)  # the clean and the noised runs
    assert ran == (cells - len(KINDS) * n * start) * 3


FACTS = [
    ("The capital of France is", "France", " Paris"),
    ("Rome is the capital of", "Rome", " Italy"),  # subject at the start: nothing skipped
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux", " French"),
    ("In Japan, the company Toyota was founded", "Toyota", " in"),
]


def test_packed_dataset_trace_ragged(no_bitwise):
    model, tok = _tiny("llama")
    opts = dict(samples=2, window=2, noise_level=0.5, seed=3)
    with RowCounter(model) as count:
        res = trace_dataset(model, tok, FACTS, filter_correct=False, records_per_batch=4,
                            progress=False, **opts)  # fmt: skip
    assert len({len(t.tokens) for t in res.traces}) > 2  # ragged
    n = len(res.layers)
    cells = sum(len(KINDS) * n * len(t.tokens) for t in res.traces)
    skipped = sum(len(KINDS) * n * t.subject[0] for t in res.traces)
    assert skipped > 0 and count.rows - len(FACTS) * 3 == (cells - skipped) * 2
    for t, (prompt, _, _) in zip(res.traces, FACTS):
        check_trace(t, model, tok, prompt, 2, 0.5, 3, 2)


def test_encoder_is_never_skipped(no_bitwise):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=16,
                     initializer_range=0.5)  # fmt: skip
    cfg._attn_implementation = "eager"
    model = BertForMaskedLM(cfg).eval()
    base, source = shared_prefix()
    assert diff_starts(model, base, source, None, 2, 7) is None
    with RowCounter(model) as count:
        res = patching_sweep(model, base, source, logit7, "block_output", progress=False)
    assert count.rows - 3 == 2 * 7 * 2  # every row computed
    # position 0 is shared, yet restoring it changes the output: every position sees it
    want = plain_cell(model, base, source, "block_output", (0,), (0,), logit7)
    assert res["block_output"][0, 0].item() == pytest.approx(want, abs=1e-5)
    assert abs(want - res.base_value) > 1e-4


def test_inputs_embeds_and_training_are_never_skipped(no_bitwise):
    model = make_llama(n_layer=3)
    base, source = shared_prefix()
    emb = model.get_input_embeddings()
    eb, es = ({"inputs_embeds": emb(x["input_ids"]).detach()} for x in (base, source))
    assert diff_starts(model, eb, es, None, 2, 7) is None
    with RowCounter(model) as count:
        patching_sweep(model, eb, es, logit7, "block_output", progress=False)
    assert count.rows - 3 == 3 * 7 * 2
    model.train()
    try:
        assert diff_starts(model, base, source, None, 2, 7) is None
    finally:
        model.eval()


def test_declared_diff_start_is_checked():
    model = make_llama(n_layer=3)
    base, source = shared_prefix()
    with pytest.raises(ValueError, match=r"diff_start entry 9 must be an int in 0\.\.7"):
        patching_sweep(model, base, source, logit7, diff_start=9, progress=False)
    with pytest.raises(ValueError, match="one per base example"):
        patching_sweep(model, base, source, logit7, diff_start=[1, 2, 3], progress=False)
    # declared and read off the ids: the earlier one per example
    assert diff_starts(model, base, source, [5, 0], 2, 7) == [3, 0]

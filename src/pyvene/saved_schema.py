"""Field-by-field validation of a saved folder's ``config.json``, the JSON form of constructor
arguments, and the weights checksum.

Every field is checked for its type and range before anything is built; an unknown key is
refused with the key named (a typo or a newer writer), so a hand-edited or corrupted file
fails with a :class:`~pyvene.errors.SerializationError` naming the field instead of
silently changing the result. ``checksums`` maps each weights file to ``"sha256:<hex>"``;
folders written before it existed (no ``checksums``) still load.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .config import FIELDS, VALID_MODES
from .errors import SerializationError, choices_message

TOP_KEYS = (
    "format", "format_version", "pyvene_version", "mode", "model", "representations",
    "interventions", "sorted_keys", "checksums",
)  # fmt: skip
ENTRY_KEYS = (
    "key", "type", "kwargs", "embed_dim", "interchange_dim", "use_fast", "is_source_constant",
    "linked_to",
)  # fmt: skip
# what save records of the model (serialization.model_fingerprint); strings, then sizes
FINGERPRINT_KEYS = (
    "model_class", "model_type", "hidden_size", "num_layers", "num_attention_heads",
    "n_parameters",
)  # fmt: skip
# fields a representation cannot default: a missing one would silently move the intervention
REQUIRED_REP_KEYS = ("layer", "component")
# the weights files a saved folder may record checksums for (see serialization.save)
CHECKSUM_FILES = ("interventions.safetensors", "model.safetensors")
DTYPE_TAG = "torch.dtype"
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")


# ------------------------------------------------------------------------ constructor kwargs
def encode_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """JSON form of constructor arguments: scalars, (nested) lists of scalars and torch dtypes
    (``{"torch.dtype": "float32"}``); anything else (tensors, objects) is left out."""
    out = {}
    for k, v in kwargs.items():
        enc = _encode(v)
        if enc is not _SKIP:
            out[str(k)] = enc
    return out


_SKIP = object()


def _encode(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, torch.dtype):
        return {DTYPE_TAG: str(v).removeprefix("torch.")}
    if isinstance(v, (list, tuple)):
        items = [_encode(x) for x in v]
        return _SKIP if any(x is _SKIP for x in items) else items
    return _SKIP


def decode_kwargs(value: Any, where: str) -> dict[str, Any]:
    """Constructor arguments from their JSON form, each value checked."""
    if not isinstance(value, dict):
        raise SerializationError(f"{where}: 'kwargs' must be a JSON object, got {value!r}")
    return {str(k): _decode(v, f"{where}: kwargs[{k!r}]") for k, v in value.items()}


def _decode(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, list):
        return [_decode(x, where) for x in v]
    if isinstance(v, dict) and set(v) == {DTYPE_TAG}:
        name = v[DTYPE_TAG]
        if name not in DTYPES:
            raise SerializationError(choices_message(f"{where} dtype", name, DTYPES))
        return getattr(torch, name)
    raise SerializationError(f"{where} holds {v!r}, which is not a constructor argument value")


# ------------------------------------------------------------------------------- validation
def _int(value: Any, where: str, low: int, none_ok: bool = True) -> None:
    if value is None and none_ok:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SerializationError(
            f"{where} must be an integer >= {low}{' or null' if none_ok else ''}, got {value!r}"
        )


def _unknown(data: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    extra = [k for k in data if k not in allowed]
    if extra:
        raise SerializationError(f"{where}: " + choices_message("key", extra[0], allowed))


def validate_config(data: dict[str, Any], where: str) -> None:
    """Check a current-format ``config.json`` (already parsed) field by field."""
    _unknown(data, TOP_KEYS, where)
    if not isinstance(data.get("pyvene_version", ""), str):
        raise SerializationError(
            f"{where}: 'pyvene_version' must be a string, got {data['pyvene_version']!r}"
        )
    if data.get("mode", "parallel") not in VALID_MODES:
        raise SerializationError(f"{where}: " + choices_message("mode", data["mode"], VALID_MODES))
    validate_fingerprint(data.get("model"), where)
    entries, reps = data.get("interventions"), data.get("representations")
    if not isinstance(entries, list) or not isinstance(reps, list):
        raise SerializationError(f"{where}: 'interventions' and 'representations' must be lists")
    if len(entries) != len(reps):
        raise SerializationError(
            f"{where}: {len(entries)} interventions but {len(reps)} representations"
        )
    for i, rep in enumerate(reps):
        validate_representation(rep, f"{where}: representations[{i}]")
    keys: list[str] = []
    for i, entry in enumerate(entries):
        validate_entry(entry, f"{where}: interventions[{i}]", keys)
        keys.append(entry["key"])
    if "sorted_keys" in data and data["sorted_keys"] != keys:
        raise SerializationError(
            f"{where}: 'sorted_keys' {data['sorted_keys']!r} must list the interventions' keys "
            f"in order: {keys!r}"
        )
    checks = data.get("checksums")
    if checks is not None and not (
        isinstance(checks, dict) and all(isinstance(v, str) for v in checks.values())
    ):
        raise SerializationError(f"{where}: 'checksums' must map file names to strings")
    for name in checks or {}:
        if name not in CHECKSUM_FILES:
            raise SerializationError(
                f"{where}: checksums: " + choices_message("weights file", name, CHECKSUM_FILES)
            )


def validate_fingerprint(model: Any, where: str) -> None:
    """``model``: what the folder records of the model it was made for (names as strings,
    sizes as integers; every key one that save writes)."""
    if model is None:
        return
    if not isinstance(model, dict):
        raise SerializationError(f"{where}: 'model' must be a JSON object, got {model!r}")
    _unknown(model, FINGERPRINT_KEYS, f"{where}: model")
    for name in ("model_class", "model_type"):
        if not isinstance(model.get(name), (str, type(None))):
            raise SerializationError(f"{where}: model.{name} must be a string")
    for name in FINGERPRINT_KEYS[2:]:
        _int(model.get(name), f"{where}: model.{name}", 1)


def validate_representation(rep: Any, where: str) -> None:
    """Check one saved representation (a JSON object at ``where``) field by field; raise
    :class:`SerializationError` naming the bad field, so a bad file fails on load, not later."""
    if not isinstance(rep, dict):
        raise SerializationError(f"{where} must be a JSON object, got {rep!r}")
    _unknown(rep, FIELDS, where)
    for name in REQUIRED_REP_KEYS:
        if name not in rep:
            raise SerializationError(f"{where} has no {name!r} (required in a saved folder)")
    _validate_sizes(rep, where)
    for name in ("intervention_type", "intervention", "source_representation"):
        if rep.get(name) not in (None, "PLACEHOLDER"):
            raise SerializationError(f"{where}.{name} must be null in a saved folder")
    part = rep.get("subspace_partition")
    if part is not None and not (
        isinstance(part, list)
        and all(isinstance(p, list) and all(_is_index(x) for x in p) for p in part)
    ):
        raise SerializationError(f"{where}.subspace_partition must be a list of int lists")
    for name in ("group_key", "intervention_link_key", "moe_key"):
        value = rep.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, str))):
            raise SerializationError(f"{where}.{name} must be an int, a string or null")
    if not isinstance(rep.get("hidden_source_representation", None), (bool, type(None))):
        raise SerializationError(f"{where}.hidden_source_representation must be a boolean")


def _validate_sizes(rep: dict[str, Any], where: str) -> None:
    """Layer, component, unit and the integer sizes of one saved representation."""
    _int(rep["layer"], f"{where}.layer", 0, none_ok=False)
    for name in ("component", "unit"):
        if name in rep and not (isinstance(rep[name], str) and rep[name]):
            raise SerializationError(f"{where}.{name} must be a non-empty string")
    _int(rep.get("max_number_of_units", 1), f"{where}.max_number_of_units", 1, none_ok=False)
    for name in ("low_rank_dimension", "latent_dim"):
        _int(rep.get(name), f"{where}.{name}", 1)


def _is_index(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def validate_entry(entry: Any, where: str, earlier: list[str]) -> None:
    """Check one saved intervention entry (key, type, kwargs, dims) at ``where``; ``earlier``
    holds the keys already seen, so a duplicate key is refused."""
    if not isinstance(entry, dict):
        raise SerializationError(f"{where} must be a JSON object, got {entry!r}")
    _unknown(entry, ENTRY_KEYS, where)
    key = entry.get("key")
    if not isinstance(key, str) or not key:
        raise SerializationError(f"{where}.key must be a non-empty string, got {key!r}")
    if key in earlier:
        raise SerializationError(f"{where}.key {key!r} appears twice")
    if not isinstance(entry.get("type"), str):
        raise SerializationError(f"{where}.type must be a class name string")
    decode_kwargs(entry.get("kwargs", {}), where)
    _int(entry.get("embed_dim"), f"{where}.embed_dim", 1)
    dim = entry.get("interchange_dim")
    if isinstance(dim, list):
        if not all(_is_index(d) for d in dim):
            raise SerializationError(f"{where}.interchange_dim: every entry must be an int >= 0")
    else:
        _int(dim, f"{where}.interchange_dim", 0)
        width = entry.get("embed_dim")
        if dim is not None and width is not None and dim > width:
            raise SerializationError(
                f"{where}.interchange_dim {dim} is larger than embed_dim {width}"
            )
    for name in ("use_fast", "is_source_constant"):
        if not isinstance(entry.get(name, False), bool):
            raise SerializationError(f"{where}.{name} must be true or false")
    link = entry.get("linked_to")
    if link is not None and link not in earlier:
        raise SerializationError(f"{where}.linked_to {link!r} names no earlier key")


# -------------------------------------------------------------------------------- checksums
def checksum(path: Path) -> str:
    """``"sha256:<hex>"`` of a file's bytes."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def verify_checksum(data: dict[str, Any], path: Path) -> None:
    """Compare ``path`` with the checksum ``config.json`` recorded for it, if any."""
    if "checksums" not in data:
        return  # a folder written before checksums existed
    want = (data["checksums"] or {}).get(path.name)
    if want is None:
        raise SerializationError(
            f"config.json records checksums but none for {path.name!r}: the folder was edited "
            "after saving. Save the interventions again."
        )
    have = checksum(path)
    if have != want:
        raise SerializationError(
            f"{str(path)!r} does not match the checksum recorded in config.json "
            f"(checksums[{path.name!r}]: recorded {want}, file {have}): the weights file was "
            "changed or corrupted after saving. Save the interventions again."
        )


__all__ = [
    "DTYPES",
    "DTYPE_TAG",
    "ENTRY_KEYS",
    "TOP_KEYS",
    "checksum",
    "decode_kwargs",
    "encode_kwargs",
    "validate_config",
    "validate_entry",
    "validate_representation",
    "verify_checksum",
]

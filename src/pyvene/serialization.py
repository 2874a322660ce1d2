"""Save and load interventions: a folder (or hub repo) with ``config.json`` and
``interventions.safetensors``. Never pickle; loading never imports a module named by a file.

``config.json`` (format 1)::

    {"format": "pyvene.interventions", "format_version": 1, "mode": "parallel",
     "model": {"model_type": "gpt2", "hidden_size": 768, "num_layers": 12, ...},
     "representations": [{RepresentationConfig fields, JSON only}, ...],
     "interventions": [{"key": ..., "type": <registered name or "module:QualName">,
                        "kwargs": {...}, "embed_dim": ..., "interchange_dim": ...,
                        "linked_to": null}, ...],
     "checksums": {"interventions.safetensors": "sha256:..."}}

``interventions.safetensors`` holds ``"{key}/{state_dict name}"`` for every intervention
(parameters and buffers, e.g. a constant ``source_representation``; a linked intervention
once, under its first key). Every field is validated (:mod:`pyvene.saved_schema`) and the
weights are checked against the recorded checksum. Every problem -- missing, corrupted or
truncated file, a bad field, a class that is not imported, newer format, another
architecture -- raises SerializationError before anything (the model included) is changed.
Client classes are saved by import path and resolved only among imported modules
(:mod:`pyvene.classpath`). Folders of the original pyvene (``intkey_*.bin``) are read by
:mod:`pyvene.legacy`. ``save_intervention``/``load_intervention``: trainable weights only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import __version__
from .classpath import class_reference, resolve_class
from .config import IntervenableConfig, RepresentationConfig
from .errors import PyveneError, SerializationError
from .families import resolve_site
from .hub import push_folder, resolve_directory
from .idioms import warn_hub_name
from .interventions.contract import caller_kwargs, construct, contract
from .legacy import read_legacy
from .saved_files import (
    CONFIG_NAME,
    FORMAT,
    FORMAT_VERSION,
    MODEL_NAME,
    TRAINABLE_NAME,
    WEIGHTS_NAME,
    atomic_write,
    check_model_weights,
    folder_path,
    load_state,
    model_grad_weights,
    read_tensors,
    write_tensors,
)
from .saved_schema import checksum, decode_kwargs, encode_kwargs, validate_config, verify_checksum
from .trainable_io import load_intervention as load_intervention  # the original's import path
from .trainable_io import save_intervention as save_intervention

if TYPE_CHECKING:
    from .intervenable import IntervenableModel

_REP_SKIP = ("intervention_type", "intervention", "source_representation")


# ----------------------------------------------------------------------------- fingerprint
def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """What a saved folder records about the model it was made for."""
    config = getattr(model, "config", None)
    out: dict[str, Any] = {"model_class": type(model).__name__}
    if config is None:
        out["n_parameters"] = sum(p.numel() for p in model.parameters())
        return out
    out["model_type"] = getattr(config, "model_type", None)
    for name, attrs in (
        ("hidden_size", ("hidden_size", "n_embd", "d_model")),
        ("num_layers", ("num_hidden_layers", "n_layer", "num_layers")),
        ("num_attention_heads", ("num_attention_heads", "n_head")),
    ):
        out[name] = next((getattr(config, a) for a in attrs if getattr(config, a, None)), None)
    return out


def check_fingerprint(saved: dict[str, Any] | None, model: nn.Module) -> None:
    """Refuse a folder made for another architecture (type, width, depth or heads differ)."""
    if not saved:
        return
    now = model_fingerprint(model)
    names = ("model_type", "hidden_size", "num_layers", "num_attention_heads", "n_parameters")
    diffs = [
        f"{n}: saved {saved[n]!r}, this model {now[n]!r}"
        for n in names
        if saved.get(n) is not None and now.get(n) is not None and saved[n] != now[n]
    ]
    if diffs:
        raise SerializationError(
            f"these interventions were made for another model ({saved.get('model_class')}); "
            + "; ".join(diffs)
            + ". Load them onto the architecture they were trained on."
        )


# ------------------------------------------------------------------------------------ save
def save(
    pvm: IntervenableModel,
    save_directory: str | os.PathLike,
    save_to_hf_hub: bool = False,
    hf_repo_name: str | None = None,
    include_model: bool = False,
    private: bool = False,
    token: str | bool | None = None,
) -> None:
    """Write ``config.json`` + ``interventions.safetensors`` (+ ``model.safetensors`` with the
    model weights that require grad when ``include_model``); optionally upload to the hub."""
    save_directory = folder_path(save_directory, "save_directory")
    if not save_to_hf_hub:
        warn_hub_name(save_directory, "save")
    entries, tensors = describe(pvm)
    directory = Path(save_directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    write_tensors(directory / WEIGHTS_NAME, tensors, FORMAT)
    checksums = {WEIGHTS_NAME: checksum(directory / WEIGHTS_NAME)}
    if include_model:
        write_tensors(directory / MODEL_NAME, model_grad_weights(pvm.model), FORMAT)
        checksums[MODEL_NAME] = checksum(directory / MODEL_NAME)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pyvene_version": __version__,
        "mode": pvm.mode,
        "model": model_fingerprint(pvm.model),
        "representations": [_rep_json(pvm.representations[e["key"]]) for e in entries],
        "interventions": entries,
        "sorted_keys": [e["key"] for e in entries],
        "checksums": checksums,
    }
    atomic_write(directory / CONFIG_NAME, json.dumps(config, indent=2).encode())
    if save_to_hf_hub:
        repo = hf_repo_name or directory.name
        push_folder(directory, repo, private=private, token=token)


def push_to_hub(
    pvm: IntervenableModel,
    repo_id: str,
    include_model: bool = False,
    private: bool = False,
    token: str | bool | None = None,
) -> None:
    """Save into a temporary folder and upload it to the hub repo ``repo_id``."""
    with tempfile.TemporaryDirectory() as tmp:
        save(pvm, tmp, True, repo_id, include_model, private, token)


def describe(pvm: IntervenableModel) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
    """Config entries and tensors of every intervention; checks now that each can be rebuilt
    from them, so a folder that saves is a folder that loads."""
    entries: list[dict[str, Any]] = []
    tensors: dict[str, torch.Tensor] = {}
    first_key: dict[int, str] = {}
    for slot in pvm.plan.slots:
        key, inter = slot.key, slot.intervention
        try:
            name = class_reference(type(inter))
        except SerializationError as err:
            raise SerializationError(f"{key}: {err}") from err
        entry = {
            "key": key,
            "type": name,
            "kwargs": encode_kwargs(caller_kwargs(inter)),
            "embed_dim": getattr(inter, "embed_dim", None),
            "interchange_dim": _plain(getattr(inter, "interchange_dim", None)),
            "use_fast": bool(getattr(inter, "use_fast", False)),
            "is_source_constant": contract(inter).source_constant,
            "linked_to": first_key.get(id(inter)),
        }
        entries.append(entry)
        if entry["linked_to"] is not None:
            continue
        first_key[id(inter)] = key
        state = {k: v.detach().cpu().contiguous().clone() for k, v in inter.state_dict().items()}
        try:
            rebuild(entry, pvm.representations[key], state)
        except SerializationError as err:
            raise SerializationError(f"{key} cannot be saved: {err}") from err
        tensors.update({f"{key}/{k}": v for k, v in state.items()})
    return entries, tensors


def _rep_json(rep: RepresentationConfig) -> dict[str, Any]:
    out = rep.to_json_dict()
    for f in _REP_SKIP:
        out[f] = None
    if rep.source_representation is not None:
        out["hidden_source_representation"] = True
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


# ------------------------------------------------------------------------------------ load
def read_saved(
    load_directory: str | os.PathLike,
    model: nn.Module,
    local_directory: str | os.PathLike | None = None,
    from_huggingface_hub: bool = False,
    include_model: bool = False,
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> tuple[IntervenableConfig, dict[str, torch.Tensor] | None]:
    """The config (its representations carrying ready interventions) and, with
    ``include_model``, the saved model weights of a folder or hub repo, every file checked;
    ``IntervenableModel.load`` builds the model from them. Nothing is changed here."""
    directory = resolve_directory(
        folder_path(load_directory, "load_directory"),
        from_huggingface_hub,
        local_directory,
        cache_dir=cache_dir,
        revision=revision,
        token=token,
        local_files_only=local_files_only,
    )
    data = read_config(directory)
    if "format_version" not in data and "intervention_types" in data:
        config = read_legacy(directory, data, model)
    else:
        config = _read_current(directory, data, model)
    model_weights = None
    if include_model and (directory / MODEL_NAME).is_file():
        verify_checksum(data, directory / MODEL_NAME)
        model_weights = read_tensors(directory / MODEL_NAME)
        check_model_weights(model, model_weights)
    return config, model_weights


def read_config(directory: Path) -> dict[str, Any]:
    """Parse and validate ``config.json`` (current or original layout) of a saved folder."""
    path = directory / CONFIG_NAME
    if not path.is_file():
        hint = ""
        if (directory / TRAINABLE_NAME).is_file():
            hint = " It holds trainable weights only (save_intervention): use load_intervention."
        raise SerializationError(f"no {CONFIG_NAME} in {str(directory)!r}.{hint}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SerializationError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(data, dict):
        raise SerializationError(f"{path} must hold a JSON object")
    version = data.get("format_version")
    if version is None and "intervention_types" not in data:
        raise SerializationError(
            f"{path} has no 'format_version' (and is not an original-layout folder with "
            "'intervention_types'): not a pyvene interventions folder, or an edited one."
        )
    if version is not None:
        if data.get("format") != FORMAT:
            raise SerializationError(f"{path}: format {data.get('format')!r} is not {FORMAT!r}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise SerializationError(
                f"{path}: format_version must be an integer >= 1, got {version!r}"
            )
        if version > FORMAT_VERSION:
            raise SerializationError(
                f"{path} has format version {version!r}; this pyvene reads versions up to "
                f"{FORMAT_VERSION}. Upgrade pyvene to load it."
            )
        validate_config(data, str(path))
    return data


def _read_current(directory: Path, data: dict[str, Any], model: nn.Module) -> IntervenableConfig:
    check_fingerprint(data.get("model"), model)
    entries, reps = data["interventions"], data["representations"]
    if (directory / WEIGHTS_NAME).is_file():
        verify_checksum(data, directory / WEIGHTS_NAME)
    tensors = read_tensors(directory / WEIGHTS_NAME)
    by_key: dict[str, nn.Module] = {}
    out_reps = []
    for entry, rep_data in zip(entries, reps):
        rep = _rep_from_json(rep_data)
        key = entry.get("key")
        if entry.get("linked_to") is not None:
            inter = by_key[entry["linked_to"]]
        else:
            _check_width(model, rep, entry)
            prefix = f"{key}/"
            state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            inter = rebuild(entry, rep, state)
        by_key[key] = inter
        out_reps.append(rep._replace(intervention=inter))
    return IntervenableConfig(out_reps, mode=data.get("mode", "parallel"))


def _rep_from_json(rep_data: Any) -> RepresentationConfig:
    if not isinstance(rep_data, dict):
        raise SerializationError(f"a saved representation must be a JSON object: {rep_data!r}")
    fields = {k: v for k, v in rep_data.items() if k not in _REP_SKIP}
    try:
        return RepresentationConfig(**fields)
    except (TypeError, PyveneError) as err:
        raise SerializationError(f"saved representation {rep_data!r} is invalid: {err}") from err


def _check_width(model: nn.Module, rep: RepresentationConfig, entry: dict[str, Any]) -> None:
    try:
        site = resolve_site(model, rep.layer, rep.component)
    except PyveneError as err:
        raise SerializationError(f"{entry.get('key')}: {err}") from err
    want = None if site.dim is None else site.dim * rep.max_number_of_units
    have = entry.get("embed_dim")
    if want is not None and have is not None and want != have:
        raise SerializationError(
            f"{entry.get('key')}: saved for a width (embed_dim) of {have}, but {rep.component} of layer "
            f"{rep.layer} has width {want} in this model (another architecture?)"
        )


def rebuild(entry: dict[str, Any], rep: RepresentationConfig, state: dict[str, torch.Tensor]):
    """Construct the intervention from its entry (the one construction path of
    :func:`~pyvene.interventions.contract.construct`) and load ``state`` into it (strict)."""
    key = entry.get("key")
    cls = resolve_class(entry.get("type"))
    saved = decode_kwargs(entry.get("kwargs") or {}, str(key))
    fields = {k: v for k, v in rep._asdict().items() if k not in _REP_SKIP}
    try:
        inter = construct(cls, fields, entry.get("embed_dim"), saved)
    except Exception as err:
        raise SerializationError(
            f"{key}: {cls.__name__} could not be rebuilt from its saved arguments "
            f"(kwargs) {saved!r}: {type(err).__name__}: {err}"
        ) from err
    load_state(inter, state, key)
    dim = entry.get("interchange_dim")
    if _plain(getattr(inter, "interchange_dim", None)) != dim and hasattr(
        inter, "set_interchange_dim"
    ):
        inter.set_interchange_dim(dim)  # only when it was changed after construction
    inter.use_fast = bool(entry.get("use_fast", False))
    if entry.get("is_source_constant"):
        inter.is_source_constant = True
    return inter


__all__ = [
    "check_fingerprint",
    "describe",
    "load_intervention",
    "model_fingerprint",
    "push_to_hub",
    "read_config",
    "read_saved",
    "rebuild",
    "save",
    "save_intervention",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MODEL_NAME",
    "TRAINABLE_NAME",
    "FORMAT",
    "FORMAT_VERSION",
]

"""Hugging Face Hub transport for saved interventions: resolve a directory or repo id to a
local folder (``snapshot_download``, honouring ``cache_dir``, ``local_files_only`` and
``HF_HUB_OFFLINE``) and upload a saved folder (``HfApi.create_repo`` + ``upload_folder``).
Only JSON and safetensors files (and the original's ``intkey_*.bin`` for reading) travel."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import SerializationError

DOWNLOAD_PATTERNS = ["config.json", "*.safetensors", "intkey_*.bin"]
UPLOAD_PATTERNS = ["config.json", "*.safetensors"]


def resolve_directory(
    location: str | os.PathLike,
    from_huggingface_hub: bool = False,
    local_directory: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    revision: str | None = None,
    token: str | bool | None = None,
    local_files_only: bool = False,
) -> Path:
    """A local folder holding the saved files: ``location`` itself when it is a directory
    (and the hub is not forced), else a snapshot of the hub repo ``location``."""
    path = Path(location).expanduser()
    if path.is_dir() and not from_huggingface_hub:
        return path
    if not from_huggingface_hub and not looks_like_repo_id(location):
        what = "is a file, not a folder" if path.exists() else "does not exist"
        raise SerializationError(
            f"no saved folder at {str(location)!r}: the path {what}. Give the folder written by "
            "IntervenableModel.save (or a hub repo id such as 'user/my-intervention')."
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - huggingface_hub ships with transformers
        raise SerializationError(
            f"{str(location)!r} is not a local directory and huggingface_hub is not installed"
        ) from err
    try:
        folder = snapshot_download(
            repo_id=str(location),
            local_dir=None if local_directory is None else str(local_directory),
            cache_dir=None if cache_dir is None else str(cache_dir),
            revision=revision,
            token=token,
            local_files_only=local_files_only,
            allow_patterns=DOWNLOAD_PATTERNS,
        )
    except Exception as err:
        raise SerializationError(
            f"{str(location)!r} is not a local directory, and fetching it as a Hugging Face Hub "
            f"repo failed ({type(err).__name__}: {err}). Give the path of a folder written by "
            "IntervenableModel.save, or a repo id such as 'user/my-intervention'."
        ) from err
    return Path(folder)


def looks_like_repo_id(location: str | os.PathLike) -> bool:
    """True for ``name`` or ``owner/name`` (letters, digits, ``-_.``), which the hub could
    hold; a path with more parts, a leading ``/``, ``./``, ``~`` or a backslash cannot."""
    text = str(location)
    return bool(re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text)) and not text.startswith(".")


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    token: str | bool | None = None,
    commit_message: str = "Upload pyvene interventions",
    **kwargs: Any,
) -> Any:
    """Create ``repo_id`` if needed and upload the saved files of ``folder`` to it."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            allow_patterns=UPLOAD_PATTERNS,
            commit_message=commit_message,
            **kwargs,
        )
    except Exception as err:
        raise SerializationError(
            f"uploading {str(folder)!r} to the hub repo {repo_id!r} failed "
            f"({type(err).__name__}: {err}); the local copy is complete"
        ) from err

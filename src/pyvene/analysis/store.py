"""A run folder: dataset results written as they are computed, resumable, loadable.

Layout (all JSON + safetensors; loading never executes code)::

    out_dir/
      meta.json                 {"format": "pyvene.<job kind>", "version": 1, "params": {...}}
      part-000000.safetensors   tensors of the records of one batch, named "<index>/<name>"
      part-000000.json          [{"index": 0, "status": "ok" | "skipped", ...}, ...]

A part's JSON is written after its tensors (each file written to a temporary name and
renamed), so a part whose JSON exists is complete: an interrupted run resumes with the
records no part lists. ``params`` must match to resume into the same folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import PyveneError

FORMAT_VERSION = 1


class RunFolderError(PyveneError, ValueError):
    """The run folder belongs to another job, or is damaged."""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RunStore:
    """One run folder for a job of ``kind`` (``"trace"``, ``"patch"``) with ``params``."""

    def __init__(self, out_dir: str | os.PathLike[str], kind: str, params: dict[str, Any]):
        self.dir, self.kind = Path(out_dir), kind
        self.params = json.loads(json.dumps(params))  # normalised as it is stored

    @property
    def meta_path(self) -> Path:
        return self.dir / "meta.json"

    def open(self, write: bool = True) -> None:
        """Check the folder holds this job (or nothing); with ``write``, write ``meta.json``."""
        if self.meta_path.exists():
            meta = self.read_meta(self.dir)
            if meta.get("format") != f"pyvene.{self.kind}":
                raise RunFolderError(
                    f"{str(self.dir)!r} holds a {meta.get('format')!r} run, not pyvene.{self.kind}"
                )
            if meta.get("params") != self.params:
                old, new = meta.get("params", {}), self.params
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise RunFolderError(
                    f"{str(self.dir)!r} holds a run with other parameters ({', '.join(diff)} "
                    f"differ); resume with the same ones or use a new --out-dir"
                )
            return
        if write:
            self.dir.mkdir(parents=True, exist_ok=True)
            meta = {"format": f"pyvene.{self.kind}", "version": FORMAT_VERSION}
            meta["params"] = self.params
            _write_atomic(self.meta_path, json.dumps(meta, indent=1).encode())

    @staticmethod
    def read_meta(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
        path = Path(out_dir) / "meta.json"
        if not path.exists():
            raise RunFolderError(f"{str(out_dir)!r} is not a pyvene run folder (no meta.json)")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunFolderError(f"{str(path)!r} is not valid JSON: {exc}") from None
        if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
            raise RunFolderError(f"{str(path)!r}: unknown run folder version")
        return meta

    def _parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.json")) if self.dir.exists() else []

    def done(self) -> set[int]:
        """Indices of the records some complete part holds."""
        return {int(e["index"]) for p in self._parts() for e in json.loads(p.read_text())}

    def write(
        self, first: int, entries: list[dict[str, Any]], tensors: dict[str, torch.Tensor]
    ) -> None:
        """One part: ``entries`` (JSON-able, each with ``index``) and their ``tensors``."""
        from safetensors.torch import save

        name = f"part-{first:06d}"
        blobs = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        _write_atomic(self.dir / f"{name}.safetensors", save(blobs) if blobs else save({}))
        _write_atomic(self.dir / f"{name}.json", json.dumps(entries).encode())

    def load(self) -> tuple[list[dict[str, Any]], dict[str, torch.Tensor]]:
        """Every entry (sorted by index) and every tensor of the folder."""
        from safetensors.torch import load_file

        entries: list[dict[str, Any]] = []
        tensors: dict[str, torch.Tensor] = {}
        for part in self._parts():
            entries.extend(json.loads(part.read_text()))
            blob = part.with_suffix(".safetensors")
            if not blob.exists():
                raise RunFolderError(f"{str(blob)!r} is missing (its part's JSON exists)")
            tensors.update(load_file(str(blob)))
        entries.sort(key=lambda e: int(e["index"]))
        return entries, tensors

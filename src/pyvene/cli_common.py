"""What the command modules share: the user-error type, loading ``--model``, ``--layers``
parsing, the printed table and the CLEAN/CORRUPT pair of ``patch`` and ``attribute``.

:mod:`pyvene.cli` (the parser and dispatch) and the command modules (:mod:`pyvene.cli_dataset`,
:mod:`pyvene.cli_attribute`) import this module; it imports none of them. It imports only the
standard library and :mod:`pyvene.errors` at module level, so ``pyvene --help`` stays light:
torch, transformers and the plots load when a command runs.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import PyveneError

if TYPE_CHECKING:
    import torch


class CLIError(PyveneError, ValueError):
    """A user error: printed as one line, exit status 2 (as every PyveneError is)."""


def load_model(model_dir: str | None) -> tuple[Any, Any]:
    """(model, tokenizer) from a local folder, or the bundled SmolLM2 when none is given."""
    if model_dir is None:
        from .zoo import MissingModelPackageError, load_smollm2

        try:
            return load_smollm2()
        except MissingModelPackageError as exc:
            raise CLIError(str(exc)) from None
    if not os.path.isdir(model_dir):
        raise CLIError(f"model folder {model_dir!r} does not exist")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CLIError(f"cannot load a causal LM from {model_dir!r}: {first}") from None
    return model.eval(), tokenizer


def parse_layers(spec: str | None, n_layers: int) -> list[int] | None:
    """``--layers`` ("0,3,5" or "0-11") as a list of layer indices (None: every layer)."""
    if not spec:
        return None
    out: list[int] = []
    try:
        for part in spec.split(","):
            if "-" in part.strip()[1:]:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
    except ValueError:
        raise CLIError(f"--layers {spec!r}: use a list like 0,5,10 or a range like 0-29") from None
    bad = [x for x in out if not 0 <= x < n_layers]
    if bad:
        raise CLIError(f"--layers: {bad} out of range (the model has {n_layers} layers)")
    return out


def format_table(grid: torch.Tensor, rows: Sequence[str], layers: Sequence[int]) -> str:
    """A ``(layers, rows)`` grid printed with one line per row label and one column per layer
    (columns at least one space apart, also for negative or large values)."""
    from .analysis.plots import clean_token

    names = [repr(clean_token(r))[1:-1] for r in rows]
    width = max(len(n) for n in names)
    cells = [[f"{float(v):.3f}" for v in grid[:, i]] for i in range(len(names))]
    col = max([6, *(len(str(layer)) + 1 for layer in layers)]
              + [len(c) + 1 for row in cells for c in row])  # fmt: skip
    head = " " * width + " |" + "".join(f"{layer:>{col}d}" for layer in layers)
    lines = [head, "-" * len(head)]
    for name, row in zip(names, cells):
        lines.append(f"{name:>{width}} |" + "".join(f"{c:>{col}}" for c in row))
    return "\n".join(lines)


def load_pair(args: argparse.Namespace) -> tuple:
    """Load ``--model`` and tokenize the CLEAN/CORRUPT pair of the patch and attribute commands.

    Returns ``(model, tokenizer, target_id, foil_id_or_None, clean_ids, corrupt_ids)``; the two
    prompts must have the same number of tokens (a cell patches one position into the other).
    """
    from .analysis.tracing import TraceInputError, target_token_id

    model, tokenizer = load_model(args.model)
    try:
        good = target_token_id(tokenizer, args.target)
        bad = target_token_id(tokenizer, args.foil) if args.foil else None
    except TraceInputError as exc:
        raise CLIError(str(exc)) from None
    clean = tokenizer(args.clean, return_tensors="pt")["input_ids"]
    corrupt = tokenizer(args.corrupt, return_tensors="pt")["input_ids"]
    if clean.shape != corrupt.shape:
        raise CLIError(
            f"clean and corrupted prompts must have the same number of tokens "
            f"({clean.shape[1]} vs {corrupt.shape[1]})"
        )
    return model, tokenizer, good, bad, clean, corrupt


__all__ = ["CLIError", "format_table", "load_model", "load_pair", "parse_layers"]

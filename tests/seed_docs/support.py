"""Shared by tests/seed_docs (one test file per seed document): the seeds' code runs against this library: every python block of the four public documents
(/work/shared/seeds/*.txt: the SKILL page in two translations, api.md, tutorials.md).

Each block is copied into ``tests/seeds/<doc>_<n>.py`` (CI runs on a clean clone without the
documents) with a header naming its source; only the lines marked ``# changed:`` differ:

* model loading: ``"gpt2"`` & co. become ``MODEL_DIR``, the bundled SmolLM2 folder
  (``smollm2_path()``), or a tiny seeded GPT-2 folder for blocks that read GPT-2's
  ``model.config.n_layer``. That GPT-2 uses the SmolLM2 tokenizer (``vocab_size`` set to its
  length): no GPT-2 tokenizer is available offline.
* ``"..."`` placeholders in template blocks are filled with a layer and component.
* where SPEC Part A says the seed is wrong, the SPEC's form (the ``(_, collected), _`` Collect
  idiom, ``generate`` returning ``(original, ids)``, hub sharing with ``push_to_hub``); blocks
  that run as written but do nothing useful (Tutorial 3's self-source, Workflow 3's full-rank
  RotatedSpace) run as written *and* in a ``*_corrected.py`` form.
* training loops are shortened by their step count only.

Names a block uses without defining (``base_inputs``, ``dataloader``...) are given by the test.
Each block runs statement by statement in a fresh namespace; the test keeps the values of
top-level expressions and every top-level assignment, then checks them against an independent
computation (plain forward hooks on the Hugging Face model, ``output_hidden_states``, HF
``generate``). When the seed documents are present, ``test_copies_match_the_seed_documents``
checks that the copies still match them.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[2]
BLOCKS = REPO / "tests" / "seeds"
SEED_DOCS = Path(
    os.environ.get("PYVENE_SEEDS_DIR")
    or next(  # ../shared/seeds of the checkout, or of a folder above it (git worktrees)
        (p / "shared" / "seeds" for p in REPO.parents if (p / "shared" / "seeds").is_dir()),
        REPO.parent / "shared" / "seeds",
    )
)
# copy prefix -> (seed document, how many python blocks it has)
DOCS = {
    "skill": ("002_20ffd854460a3f2e.txt", 13),
    "api": ("001_c05dd76eebc64155.txt", 22),
    "tutorials": ("003_fd4e7e04cb163857.txt", 6),
}
SKILL_BILINGUAL = "000_153aae5a30df61e8.txt"  # the SKILL page again, English + Chinese
CHANGED = "# changed:"
ATOL = 1e-4


# ----------------------------------------------------------------------------- the runner
@dataclass
class Block:
    ns: dict[str, Any]
    exprs: list[Any] = field(default_factory=list)  # values of top-level expression statements
    history: dict[str, list[Any]] = field(default_factory=dict)  # every top-level assignment
    error: BaseException | None = None


def run_block(name: str, allow_error: bool = False, **names: Any) -> Block:
    """Execute tests/seeds/<name>.py one top-level statement at a time in a fresh namespace
    seeded with ``names``; tracebacks point into the copy."""
    path = BLOCKS / f"{name}.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    block = Block(ns={"__name__": f"seed_{name}", "__file__": str(path), **names})
    for node in tree.body:
        try:
            if isinstance(node, ast.Expr):
                code = compile(ast.Expression(node.value), str(path), "eval")
                block.exprs.append(eval(code, block.ns))
                continue
            exec(compile(ast.Module([node], type_ignores=[]), str(path), "exec"), block.ns)
        except Exception as err:
            if not allow_error:
                raise
            block.error = err
            return block
        targets = node.targets if isinstance(node, ast.Assign) else []
        targets += [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name):
                    block.history.setdefault(leaf.id, []).append(block.ns[leaf.id])
    return block


# --------------------------------------------------------------------- independent helpers
def run_edited(model, inputs, out_edits=None, in_edits=None, **kwargs) -> Any:
    """``model(**inputs)`` with plain hooks: ``out_edits`` {module: fn(output) -> output},
    ``in_edits`` {module: fn(first input) -> input}; fns may also just record."""
    handles = []
    for module, fn in (out_edits or {}).items():

        def hook(m, args, out, fn=fn):
            if isinstance(out, tuple):
                return (fn(out[0]),) + tuple(out[1:])
            return fn(out)

        handles.append(module.register_forward_hook(hook))
    for module, fn in (in_edits or {}).items():

        def pre(m, args, kw, fn=fn):
            if args:
                return (fn(args[0]),) + tuple(args[1:]), kw
            name = next(iter(kw))  # hidden_states passed by keyword
            return args, {**kw, name: fn(kw[name])}

        handles.append(module.register_forward_pre_hook(pre, with_kwargs=True))
    try:
        with torch.no_grad():
            return model(**inputs, **kwargs)
    finally:
        for h in handles:
            h.remove()


def capture(model, inputs, module, side: str = "out") -> torch.Tensor:
    seen: list[torch.Tensor] = []

    def keep(x):
        seen.append(x.detach().clone())
        return x

    run_edited(model, inputs, **{f"{side}_edits": {module: keep}})
    return seen[0]


def at_positions(values: torch.Tensor, src_pos: list[int], dst_pos: list[int]):
    """fn(x) that writes ``values[:, src_pos]`` into ``x[:, dst_pos]``."""

    def fn(x):
        x = x.clone()
        x[:, dst_pos] = values[:, src_pos].to(x.dtype)
        return x

    return fn


def layers_of(model) -> Any:
    return model.model.layers if hasattr(model, "model") else model.transformer.h


def assert_close(a, b, atol=ATOL):
    torch.testing.assert_close(a, b, rtol=0, atol=atol)


# ------------------------------------------------------------------ shared prompts / refs
TUTORIAL1 = ("The Colosseum is in the city of", "The Eiffel Tower is in the city of")

IOI = (
    "When John and Mary went to the store, John gave a bottle to",
    "When John and Mary went to the store, Mary gave a bottle to",
)


def pair(tok, prompts=TUTORIAL1):
    return tuple(tok(p, return_tensors="pt") for p in prompts)


def manual_patch(model, base, source, layer: int, src_pos, dst_pos, module=None):
    """Logits of ``base`` with ``module`` (default: block ``layer``) output at ``dst_pos`` taken
    from the source run's ``src_pos``."""
    module = layers_of(model)[layer] if module is None else module
    s = capture(model, source, module)
    return run_edited(model, base, {module: at_positions(s, src_pos, dst_pos)}).logits


STEER_LAYERS = (9, 15)


def steering_vectors() -> dict[int, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {layer: 3.0 * torch.randn(576, generator=g) for layer in STEER_LAYERS}

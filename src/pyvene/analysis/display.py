"""Notebook display of analysis results: Jupyter shows a result as its heatmap.

:class:`HeatmapDisplay` is a mixin: a result class that defines ``plot(path=None)`` returning
a matplotlib Figure gets ``_repr_png_``, ``_repr_html_`` (the image plus a one-line summary)
and ``_repr_mimebundle_`` (both, drawn once). A dataclass uses it as a plain base class::

    @dataclass
    class MyResult(HeatmapDisplay):
        grid: torch.Tensor

        def plot(self, path=None):
            return plot_heatmap(self.grid, tokens, path=path)

        def summary(self) -> str:  # optional: the line above the image
            return "..."
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

NOTEBOOK_DPI = 100


class HeatmapDisplay:
    """Mixin: ``_repr_png_`` / ``_repr_html_`` from the class's ``plot()`` (see module doc)."""

    def plot(self, path: Any = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define plot(path=None)")

    def summary(self) -> str:
        """One line shown above the heatmap in HTML (the class name by default)."""
        return type(self).__name__

    def _png(self) -> bytes:
        figure = self.plot()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", bbox_inches="tight", dpi=NOTEBOOK_DPI)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        """The heatmap as PNG bytes (Jupyter's image/png)."""
        return self._png()

    def _html(self, png: bytes) -> str:
        data = base64.b64encode(png).decode("ascii")
        return (
            f"<div><p><code>{html.escape(self.summary())}</code></p>"
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(type(self).__name__)}"/>'
            "</div>"
        )

    def _repr_html_(self) -> str:
        """The summary line and the heatmap inline (Jupyter's text/html)."""
        return self._html(self._png())

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Both representations from one drawing (IPython asks for this first)."""
        png = self._png()
        return {"image/png": png, "text/html": self._html(png), "text/plain": repr(self)}

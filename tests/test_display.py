"""Notebook display: sweep and trace results render their heatmap as PNG / HTML (one drawing
for the mime bundle), without pyplot (the notebook's backend and figures are left alone)."""

from __future__ import annotations

import base64
import io
import re
import sys

import pytest
import torch

from pyvene.analysis import SweepResult, TraceResult
from pyvene.analysis.display import HeatmapDisplay

PNG = b"\x89PNG\r\n\x1a\n"


def decode(png: bytes):
    import matplotlib.image

    assert png[:8] == PNG
    return matplotlib.image.imread(io.BytesIO(png), format="png")


def sweep() -> SweepResult:
    grid = torch.arange(12, dtype=torch.float32).view(3, 4) / 12
    return SweepResult({"block_output": grid, "mlp_output": 1 - grid}, [0, 1, 2], [0, 1, 2, 3],
                       None, 0.1, 0.9, tokens=["The", "ĠE", "iff", "el"])  # fmt: skip


def trace() -> TraceResult:
    grids = {k: torch.rand(4, 3, generator=torch.Generator().manual_seed(0)) for k in ("a", "b")}
    return TraceResult(grids, ["x", "Ġy", "z"], [0, 1, 2, 3], (1, 2), " Paris", 5, 0.8, 0.1,
                       2, 0.3, 2)  # fmt: skip


@pytest.mark.parametrize("make", [sweep, trace])
def test_png_and_html_show_the_heatmap(make):
    result = make()
    png = result._repr_png_()
    image = decode(png)
    reference = io.BytesIO()
    result.plot().savefig(reference, format="png", bbox_inches="tight", dpi=100)
    assert image.shape == decode(reference.getvalue()).shape
    assert (image[..., :3].std(axis=(0, 1)) > 0.05).any()  # a drawn heatmap, not a blank page
    page = result._repr_html_()
    data = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert (decode(base64.b64decode(data)) == image).all()
    assert type(result).__name__ in page and "&lt;" not in result.summary()


def test_mimebundle_draws_once_and_has_every_type(monkeypatch):
    result = sweep()
    calls = []
    real = SweepResult.plot
    monkeypatch.setattr(SweepResult, "plot", lambda self, path=None: calls.append(1) or real(self))
    bundle = result._repr_mimebundle_()
    assert calls == [1]
    assert set(bundle) == {"image/png", "text/html", "text/plain"}
    assert bundle["image/png"][:8] == PNG and "block_output, mlp_output" in bundle["text/html"]
    assert "base=0.1 source=0.9" in bundle["text/html"] and "layers 0-2" in bundle["text/html"]


def test_no_pyplot_and_plot_saves(tmp_path):
    had_pyplot = "matplotlib.pyplot" in sys.modules
    trace()._repr_png_()
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot  # figures never go through pyplot
    trace().plot(tmp_path / "t.svg")
    assert (tmp_path / "t.svg").read_text().lstrip().startswith("<?xml")


def test_mixin_applies_to_any_result_class():
    from dataclasses import dataclass

    from pyvene.analysis import plot_heatmap

    @dataclass
    class Attribution(HeatmapDisplay):
        grid: torch.Tensor

        def plot(self, path=None):
            return plot_heatmap(self.grid, ["a", "b"], path=path)

    html = Attribution(torch.eye(2))._repr_html_()
    assert "Attribution" in html and "base64," in html


def test_attribution_result_shows_its_own_heatmap(monkeypatch):
    """AttributionResult (a SweepResult) displays plot_attribution's figure, drawn once."""
    from pyvene.analysis import attribution_plots
    from pyvene.analysis.attribution import AttributionResult

    grid = torch.linspace(-1, 1, 12).view(3, 4)
    result = AttributionResult({"block_output": grid}, [0, 1, 2], [0, 1, 2, 3], None, 0.1, 0.9,
                               tokens=["a", "b", "c", "d"], units={"block_output": None})  # fmt: skip
    calls = []
    real = attribution_plots.plot_attribution
    monkeypatch.setattr(
        attribution_plots, "plot_attribution", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    bundle = result._repr_mimebundle_()
    assert calls == [1] and decode(bundle["image/png"]).shape[0] > 50
    assert "AttributionResult (atp): block_output" in bundle["text/html"]

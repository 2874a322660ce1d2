"""Rules the saved-folder fuzz (test_fuzz_folders.py) found missing, each as a plain test:
an edited field that would have been accepted silently is refused with the field named."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import hooked, ids

import pyvene as pv


@pytest.fixture()
def folder(gpt2, tmp_path):
    pvm = pv.IntervenableModel(
        [{"layer": 1, "component": "block_output", "intervention_type": pv.VanillaIntervention}],
        gpt2,
    )
    pvm.save(str(tmp_path))
    return tmp_path


def edited(folder, change) -> None:
    data = json.loads((folder / "config.json").read_text())
    change(data)
    (folder / "config.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda d: d["representations"][0].pop("layer"), "layer"),
        (lambda d: d.pop("format_version"), "format_version"),
        (lambda d: d.update(format_version=0), "format_version"),
        (lambda d: d.update(format_version=True), "format_version"),
        (lambda d: d.update(pyvene_version=3), "pyvene_version"),
        (lambda d: d.update(sorted_keys=["other"]), "sorted_keys"),
        (lambda d: d["checksums"].pop("interventions.safetensors"), "interventions.safetensors"),
        (lambda d: d["checksums"].update(extra="sha256:00"), "extra"),
        (lambda d: d["model"].update(model_class=[]), "model_class"),
        (lambda d: d["model"].update(depth=3), "depth"),
        (lambda d: d["representations"][0].update(hidden_source_representation=0),
         "hidden_source_representation"),
    ],
)  # fmt: skip
def test_edited_field_is_refused_and_named(gpt2, folder, change, named):
    edited(folder, change)
    with pytest.raises(pv.PyveneError, match=named):
        pv.IntervenableModel.load(str(folder), gpt2)


def test_unedited_folder_still_loads_and_reproduces(gpt2, folder):
    """The stricter reader accepts what save writes: same output as a plain swap hook."""
    loaded = pv.IntervenableModel.load(str(folder), gpt2)
    base, source = ids(1, 4, 1), ids(1, 4, 2)
    block = gpt2.transformer.h[1]
    with torch.no_grad():
        _, out = loaded(base, [source], {"sources->base": 2})
        store = []
        handle = hooked(block, "output", lambda t: store.append(t.clone()))
        try:
            gpt2(**source)
        finally:
            handle.remove()

        def swap(t):
            t = t.clone()
            t[:, 2] = store[0][:, 2]
            return t

        handle = hooked(block, "output", swap)
        try:
            want = gpt2(**base).logits
        finally:
            handle.remove()
    torch.testing.assert_close(out.logits, want)


def test_moe_key_is_refused_not_ignored(gpt2):
    with pytest.raises(pv.ConfigError, match="moe_key"):
        pv.IntervenableModel([{"layer": 0, "component": "block_output", "moe_key": 1}], gpt2)

"""Hostile and damaged saved folders: every field of config.json is validated on load (the
field named in the error), the weights checksum catches a flipped bit, folders without a
checksum still load, and a missing local folder says so."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ids, make_gpt2

import pyvene as pv
from pyvene.serialization import CONFIG_NAME, WEIGHTS_NAME


@pytest.fixture(scope="module")
def gpt2():
    return make_gpt2(seed=4)


@pytest.fixture()
def saved(gpt2, tmp_path):
    rep = {"layer": 1, "intervention_type": pv.RotatedSpaceIntervention}
    pvm = pv.IntervenableModel(rep, gpt2)
    pvm.interventions[0].set_interchange_dim(5)
    pvm.save(tmp_path / "f")
    return pvm, tmp_path / "f"


def edit(folder, fn):
    path = folder / CONFIG_NAME
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def entry(data):
    return data["interventions"][0]


BAD_FIELDS = [
    ("interchange_dim", lambda d: entry(d).update(interchange_dim=-7)),
    ("interchange_dim", lambda d: entry(d).update(interchange_dim="abc")),
    ("interchange_dim", lambda d: entry(d).update(interchange_dim=10_000)),
    ("embed_dim", lambda d: entry(d).update(embed_dim=0)),
    ("use_fast", lambda d: entry(d).update(use_fast="yes")),
    ("'kwargs' must be a JSON object", lambda d: entry(d).update(kwargs=[1, 2])),
    ("interventions\\[0\\] must be a JSON object", lambda d: d["interventions"].__setitem__(0, 3)),
    ("'colour'", lambda d: entry(d).update(colour=1)),
    ("'extra_field'", lambda d: d.update(extra_field=True)),
    ("'layr'", lambda d: d["representations"][0].update(layr=1)),
    ("layer", lambda d: d["representations"][0].update(layer=-1)),
    ("max_number_of_units", lambda d: d["representations"][0].update(max_number_of_units=True)),
    ("subspace_partition", lambda d: d["representations"][0].update(subspace_partition="0:4")),
    ("mode", lambda d: d.update(mode="paralel")),
    ("linked_to", lambda d: entry(d).update(linked_to="nowhere")),
    ("type", lambda d: entry(d).update(type=5)),
    ("dtype", lambda d: entry(d)["kwargs"].update(d={"torch.dtype": "os.system"})),
    ("kwargs", lambda d: entry(d)["kwargs"].update(x={"callable": "os.system"})),
    ("'bogus'", lambda d: entry(d)["kwargs"].update(bogus=1)),  # our classes take no unknowns
]


@pytest.mark.parametrize("field,damage", BAD_FIELDS)
def test_bad_field_is_refused_with_the_field_named(gpt2, saved, field, damage):
    _, folder = saved
    edit(folder, damage)
    with pytest.raises(pv.SerializationError, match=field):
        pv.IntervenableModel.load(folder, gpt2)


def test_flipped_bit_in_weights_is_refused(gpt2, saved):
    pvm, folder = saved
    data = json.loads((folder / CONFIG_NAME).read_text())
    assert data["checksums"][WEIGHTS_NAME].startswith("sha256:")
    raw = bytearray((folder / WEIGHTS_NAME).read_bytes())
    raw[-5] ^= 0x01  # inside the last tensor's data: still a readable safetensors file
    (folder / WEIGHTS_NAME).write_bytes(bytes(raw))
    with pytest.raises(pv.SerializationError, match="checksum"):
        pv.IntervenableModel.load(folder, gpt2)
    # a folder without checksums (written before they existed) still loads, weights as stored
    edit(folder, lambda d: d.pop("checksums"))
    loaded = pv.IntervenableModel.load(folder, gpt2)
    w_saved = pvm.interventions[0].rotate_layer.parametrizations.weight.original
    w_loaded = loaded.interventions[0].rotate_layer.parametrizations.weight.original
    assert int((w_saved != w_loaded).sum()) == 1


def test_intact_folder_round_trips(gpt2, saved):
    pvm, folder = saved
    loaded = pv.IntervenableModel.load(folder, gpt2)
    base, src = ids(2, 5, 1), ids(2, 5, 2)
    loc = {"sources->base": 3}
    assert loaded.interventions[0].interchange_dim == 5
    assert torch.equal(loaded(base, [src], unit_locations=loc)[1].logits, pvm(base, [src], unit_locations=loc)[1].logits)  # fmt: skip


def test_missing_local_folder_says_so(gpt2, tmp_path):
    for where in (tmp_path / "nowhere", "./not/here", "/abs/missing/folder"):
        with pytest.raises(pv.SerializationError, match="no saved folder at .*does not exist"):
            pv.IntervenableModel.load(where, gpt2)
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(pv.SerializationError, match="is a file, not a folder"):
        pv.IntervenableModel.load(tmp_path / "file.json", gpt2)

"""Placement follows the model: a fake device map (answered through the one function that says
where a module runs) puts each intervention, each loaded intervention and each per-call tensor
on its own site's device; bad placements are errors that name both devices."""

from __future__ import annotations

import pytest
import torch
from conftest import ids, make_gpt2

import pyvene as pv
from pyvene import devices
from pyvene.engine import CallState
from pyvene.gather import Units

META, CPU = torch.device("meta"), torch.device("cpu")


@pytest.fixture()
def fake_map(monkeypatch):
    """Layer 2 of a GPT-2 runs on 'meta' (a stand-in for another GPU), the rest on CPU."""
    model = make_gpt2(seed=8)
    far = model.transformer.h[2]
    real = devices.module_device

    def module_device(module, ancestors=()):
        if module is far or far in ancestors:
            return META
        return real(module, ancestors)

    monkeypatch.setattr(devices, "module_device", module_device)
    return model


def _das(layers, link=False):
    reps = [
        {"layer": k, "component": "block_output", "low_rank_dimension": 2,
         "intervention_link_key": 0 if link else None}
        for k in layers
    ]  # fmt: skip
    config = pv.IntervenableConfig(reps, intervention_types=pv.LowRankRotatedSpaceIntervention)
    return config


def _devices(pvm):
    return {k: {p.device for p in i.parameters()} for k, i in pvm.interventions.items()}


def test_each_intervention_on_its_sites_device(fake_map):
    pvm = pv.IntervenableModel(_das([0, 2]), fake_map)
    got = _devices(pvm)
    assert got == {pvm.sorted_keys[0]: {CPU}, pvm.sorted_keys[1]: {META}}
    # an instance the user built elsewhere is placed as well
    vec = pv.AdditionIntervention(embed_dim=24)
    vec.register_buffer("offset", torch.zeros(24))
    rep = {"layer": 2, "component": "block_output", "intervention": vec}
    pvm2 = pv.IntervenableModel(pv.IntervenableConfig([rep]), fake_map)
    assert pvm2.interventions[0].offset.device == META
    # set_device(set_model=False) keeps following the sites
    pvm.set_device("cpu", set_model=False)
    assert _devices(pvm) == got
    assert pvm.get_device() == CPU  # the first site's device, never a first parameter


def test_load_and_load_intervention_follow_the_fake_map(fake_map, tmp_path):
    plain = make_gpt2(seed=8)
    trained = pv.IntervenableModel(_das([0, 2]), plain)
    trained.save(tmp_path / "full")
    trained.save_intervention(tmp_path / "w")
    loaded = pv.IntervenableModel.load(tmp_path / "full", model=fake_map)
    assert [d for d in _devices(loaded).values()] == [{CPU}, {META}]
    fresh = pv.IntervenableModel(_das([0, 2]), fake_map)
    fresh.load_intervention(tmp_path / "w")
    assert [d for d in _devices(fresh).values()] == [{CPU}, {META}]
    a = list(trained.interventions.values())[0].state_dict()
    b = list(fresh.interventions.values())[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_per_call_tensors_move_once_to_each_site(fake_map):
    pvm = pv.IntervenableModel(_das([0, 2]), fake_map)
    near, far = pvm.sorted_keys
    units = Units(torch.tensor([[1, 2]]), None, (1, 2))
    state = CallState({near: units, far: units}, {far: units}, {})
    state.sources[far] = torch.ones(24)
    devices.place_call_state(state, pvm.plan.site_devices)
    assert state.base_units[near].index.device == CPU
    assert state.base_units[far].index.device == META
    assert state.source_units[far].index.device == META
    assert state.sources[far].device == META
    assert units.index.device == CPU  # the caller's objects are not changed


def test_linked_intervention_across_devices_is_refused(fake_map):
    with pytest.raises(pv.DeviceError, match="cpu.*meta|meta.*cpu"):
        pv.IntervenableModel(_das([0, 2], link=True), fake_map)


def test_module_with_weights_on_two_devices_is_refused(monkeypatch):
    """A device map that splits a hooked module (here 'meta' plays a second real device)."""
    model = make_gpt2(seed=9)
    model.transformer.h[1].mlp.c_proj.to("meta")
    monkeypatch.setattr(devices, "_real_tensors", lambda m: iter([*m.parameters(), *m.buffers()]))
    with pytest.raises(pv.DeviceError, match="cpu and meta"):
        pv.IntervenableModel({"layer": 1, "component": "mlp_output"}, model)


def test_intervention_moved_to_a_wrong_device_names_both():
    model = make_gpt2(seed=10)
    pvm = pv.IntervenableModel(_das([1]), model)
    pvm.interventions[0].to("meta")  # the user's own (wrong) move
    with pytest.raises(pv.DeviceError, match="meta.*cpu"):
        pvm(ids(1, 4, 0), [ids(1, 4, 1)], {"sources->base": 2})

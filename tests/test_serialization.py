"""save / load / save_intervention / load_intervention: bit-identical round trips for every
registered intervention (trained or not), no pickle on disk, clear refusals that change
nothing, the original pyvene's folders, and the hub path through a local hub cache."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import ids, make_gpt2, make_llama

import pyvene as pv
from pyvene.serialization import CONFIG_NAME, WEIGHTS_NAME

SKIP = {"LambdaIntervention"}  # wraps a Python function: refused at save (tested below)
EXTRA = {
    "LowRankRotatedSpaceIntervention": {"low_rank_dimension": 4},
    "LoRAIntervention": {"low_rank_dimension": 4},
    "JumpReLUAutoencoderIntervention": {"low_rank_dimension": 6},
    "AutoencoderIntervention": {"latent_dim": 6},
}
# swapping every rotated dim gives (s R) R^T = s for any rotation R, so a load that lost the
# rotation would still reproduce the output: a partial interchange_dim makes R matter
INTERCHANGE_DIM = {"RotatedSpaceIntervention": 5}


@pytest.fixture(scope="module")
def gpt2():
    return make_gpt2(seed=1)


def build(model, name, trained):
    cls = pv.registered_interventions()[name]
    base, source = ids(2, 6, 1), ids(2, 6, 2)
    if name == "PCARotatedSpaceIntervention":
        acts = model(**source, output_hidden_states=True).hidden_states[2]
        pca = cls.fit(acts, 5)  # stored row-major, as every loaded tensor is
        rep = {"layer": 1, "component": "block_output", "intervention": pca}
    elif name == "NoiseIntervention":
        rep = {"layer": 1, "intervention": cls(noise_level=0.7, seed=5, embed_dim=24)}
    else:
        rep = {"layer": 1, "component": "block_output", "intervention_type": cls, **EXTRA.get(name, {})}  # fmt: skip
    pvm = pv.IntervenableModel(rep, model)
    if name in INTERCHANGE_DIM:
        pvm.interventions[0].set_interchange_dim(INTERCHANGE_DIM[name])
    if trained:
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for t in list(pvm.interventions[0].parameters()) + list(pvm.interventions[0].buffers()):
                if t.is_floating_point():
                    t.add_(torch.randn(t.shape, generator=g) * 0.1)
    needs_source = not getattr(pvm.interventions[0], "is_source_constant", False)
    return pvm, base, ([source] if needs_source else None)


def run(pvm, base, sources):
    out = pvm(base, sources)
    return out[1].logits if not isinstance(out[0], tuple) else out[0][1][0]


def assert_no_pickle(directory: Path) -> None:
    for f in directory.rglob("*"):
        assert f.suffix not in (".bin", ".pt", ".pth", ".pkl"), f
        head = f.read_bytes()[:4]
        assert not head.startswith((b"\x80\x02", b"\x80\x03", b"\x80\x04", b"PK\x03\x04")), f
    assert b"\x80" not in (directory / CONFIG_NAME).read_bytes()
    json.loads((directory / CONFIG_NAME).read_text())


@pytest.mark.parametrize("trained", [False, True])
@pytest.mark.parametrize("name", sorted(set(pv.registered_interventions()) - SKIP))
def test_round_trip_every_registered_type(gpt2, tmp_path, name, trained):
    pvm, base, sources = build(gpt2, name, trained)
    before = run(pvm, base, sources)
    pvm.save(tmp_path / "saved")
    assert sorted(p.name for p in (tmp_path / "saved").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    assert_no_pickle(tmp_path / "saved")
    loaded = pv.IntervenableModel.load(tmp_path / "saved", model=gpt2)
    assert type(loaded.interventions[0]) is type(pvm.interventions[0])
    saved, got = pvm.interventions[0].state_dict(), loaded.interventions[0].state_dict()
    assert saved.keys() == got.keys() and all(torch.equal(saved[k], got[k]) for k in saved)
    assert torch.equal(run(loaded, base, sources), before)


def test_rotation_round_trip_restores_the_saved_rotation(gpt2, tmp_path):
    """The loaded RotatedSpace has the saved rotation and interchange_dim, and the rotation
    decides the output: a fresh (differently initialized) one gives another."""
    name = "RotatedSpaceIntervention"
    pvm, base, sources = build(gpt2, name, trained=True)
    pvm.save(tmp_path / "saved")
    loaded = pv.IntervenableModel.load(tmp_path / "saved", model=gpt2)
    saved_r, loaded_r = (m.interventions[0].rotate_layer.weight for m in (pvm, loaded))
    assert torch.equal(loaded_r, saved_r)
    assert loaded.interventions[0].interchange_dim == INTERCHANGE_DIM[name]
    torch.manual_seed(123)
    fresh, _, _ = build(gpt2, name, trained=False)
    assert not torch.allclose(fresh.interventions[0].rotate_layer.weight, saved_r)
    with torch.no_grad():
        out = run(loaded, base, sources)
        assert torch.equal(out, run(pvm, base, sources))
        assert not torch.allclose(out, run(fresh, base, sources), atol=1e-4)


def test_constant_sources_kwargs_links_and_subspace_dims(gpt2, tmp_path):
    vec = torch.randn(24)
    reps = [
        {"layer": 0, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": vec},
        {"layer": 1, "component": "mlp_output", "intervention_type": pv.LowRankRotatedSpaceIntervention,
         "low_rank_dimension": 3, "intervention_link_key": 7},
        {"layer": 2, "component": "mlp_output", "intervention_type": pv.LowRankRotatedSpaceIntervention,
         "low_rank_dimension": 3, "intervention_link_key": 7},
    ]  # fmt: skip
    pvm = pv.IntervenableModel(reps, gpt2)
    pvm.interventions[1].set_interchange_dim(2)
    base, source = ids(1, 5, 3), ids(1, 5, 4)
    locs = {"sources->base": ([None, [[1]], [[2]]], [None, [[3]], [[4]]])}
    before = pvm(base, [source], unit_locations=locs)[1].logits
    pvm.save(tmp_path / "d")
    loaded = pv.IntervenableModel.load(str(tmp_path / "d"), model=gpt2)
    assert loaded.interventions[1] is loaded.interventions[2]
    assert loaded.interventions[1].interchange_dim == 2
    assert torch.equal(loaded(base, [source], unit_locations=locs)[1].logits, before)


@pv.register("ScaledAdd")
class ScaledAdd(pv.ConstantSourceIntervention):
    """Custom registered class with its own constructor argument."""

    def __init__(self, scale: float = 1.0, **kwargs):
        super().__init__(scale=scale, **kwargs)
        self.scale = scale

    def forward(self, base, source=None, subspaces=None, **kwargs):
        return base * self.scale


@pv.register
class HalfAdd(ScaledAdd):
    """Registered by the bare decorator, under its class name."""


def test_bare_register_decorator_uses_the_class_name():
    assert pv.registered_interventions()["HalfAdd"] is HalfAdd
    assert HalfAdd.registered_name == "HalfAdd"


def test_custom_registered_class_keeps_constructor_args(gpt2, tmp_path):
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention": ScaledAdd(scale=0.25)}, gpt2
    )
    base = ids(1, 4, 5)
    pvm.save(tmp_path / "c")
    loaded = pv.IntervenableModel.load(tmp_path / "c", model=gpt2)
    assert loaded.interventions[0].scale == 0.25
    assert torch.equal(loaded(base)[1].logits, pvm(base)[1].logits)

    class Unregistered(pv.VanillaIntervention):
        pass

    bad = pv.IntervenableModel({"layer": 1, "intervention": Unregistered(embed_dim=24)}, gpt2)
    with pytest.raises(pv.SerializationError, match="defined inside a function"):
        bad.save(tmp_path / "u")
    lam = pv.IntervenableModel({"layer": 1, "intervention": lambda b, s: b * 2}, gpt2)
    with pytest.raises(pv.SerializationError):
        lam.save(tmp_path / "l")


def saved(gpt2, tmp_path) -> Path:
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output",
         "intervention_type": pv.LowRankRotatedSpaceIntervention, "low_rank_dimension": 2},
        gpt2,
    )  # fmt: skip
    pvm.save(tmp_path / "ok")
    return tmp_path / "ok"


def assert_refused(directory, model, match):
    grads = [p.requires_grad for p in model.parameters()]
    with pytest.raises(pv.SerializationError, match=match):
        pv.IntervenableModel.load(directory, model=model)
    assert [p.requires_grad for p in model.parameters()] == grads  # nothing was changed


def test_refusals_change_nothing(gpt2, tmp_path):
    d = saved(gpt2, tmp_path)
    assert_refused(d, make_llama(), "another model")
    assert_refused(d, make_gpt2(n_layer=2), "num_layers")
    for edit, match in [
        (lambda c: c.update(format_version=99), "format version 99"),
        (lambda c: c["interventions"][0].update(type="NotAnIntervention"), "NotAnIntervention"),
        (lambda c: c["interventions"][0].update(type="os.system"), "os.system"),
        (lambda c: c["interventions"][0].update(type="evil_pkg_x.Mod"), "evil_pkg_x"),
    ]:
        bad = tmp_path / f"bad{len(list(tmp_path.iterdir()))}"
        shutil.copytree(d, bad)
        config = json.loads((bad / CONFIG_NAME).read_text())
        edit(config)
        (bad / CONFIG_NAME).write_text(json.dumps(config))
        assert_refused(bad, make_gpt2(seed=1), match)
    assert "evil_pkg_x" not in sys.modules
    truncated = tmp_path / "truncated"
    shutil.copytree(d, truncated)
    data = (truncated / WEIGHTS_NAME).read_bytes()
    (truncated / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    assert_refused(truncated, make_gpt2(seed=1), "truncated")
    (truncated / WEIGHTS_NAME).unlink()
    assert_refused(truncated, make_gpt2(seed=1), "missing weights")
    assert_refused(tmp_path / "nowhere", make_gpt2(seed=1), "no saved folder at .*does not exist")


def test_save_intervention_trainable_only(gpt2, tmp_path):
    reps = [
        {"layer": 0, "component": "block_output", "intervention_type": pv.CollectIntervention},
        {"layer": 1, "component": "block_output", "intervention_type": pv.RotatedSpaceIntervention},
    ]
    pvm = pv.IntervenableModel(reps, gpt2)
    with torch.no_grad():
        for p in pvm.interventions[1].parameters():
            p.add_(0.05)
    pvm.interventions[1].set_interchange_dim(5)
    pvm.save_intervention(tmp_path / "t")
    assert [p.name for p in (tmp_path / "t").iterdir()] == ["trainable_interventions.safetensors"]
    assert_no_pickle_files(tmp_path / "t")
    fresh = pv.IntervenableModel(reps, gpt2)
    fresh.interventions[1].set_interchange_dim(5)
    fresh.load_intervention(tmp_path / "t")
    base, source = ids(1, 5, 6), ids(1, 5, 7)
    locs = {"sources->base": ([None, [[2]]], [None, [[3]]])}
    assert torch.equal(
        fresh(base, [source, source], unit_locations=locs)[1].logits,
        pvm(base, [source, source], unit_locations=locs)[1].logits,
    )
    with pytest.raises(pv.SerializationError, match="trainable weights only"):
        pv.IntervenableModel.load(tmp_path / "t", model=gpt2)


def assert_no_pickle_files(directory: Path) -> None:
    for f in directory.iterdir():
        assert not f.read_bytes()[:2].startswith(b"\x80") and f.suffix == ".safetensors"


def test_reads_original_pyvene_folder(gpt2, tmp_path):
    """A folder in the original's layout: PretrainedConfig-style JSON + intkey_*.bin."""
    rot = pv.IntervenableModel(
        {"layer": 1, "component": "block_output",
         "intervention_type": pv.LowRankRotatedSpaceIntervention, "low_rank_dimension": 2},
        gpt2,
    )  # fmt: skip
    vec = torch.randn(24)
    keys = ["layer_1_comp_block_output_unit_pos_nunit_1#0", "layer_2_comp_block_output_unit_pos_nunit_1#0"]  # fmt: skip
    config = {
        "intervention_types": [
            "<class 'pyvene.models.interventions.LowRankRotatedSpaceIntervention'>",
            "<class 'pyvene.models.interventions.AdditionIntervention'>",
        ],
        "representations": [
            [1, "block_output", "pos", 1, 2, None, None, None, None, None, None, None, None, None],
            [2, "block_output", "pos", 1, None, None, None, None, None, None, None, None, True, None],
        ],
        "sorted_keys": keys, "intervention_dimensions": [24, 24],
        "intervention_constant_sources": [False, True], "mode": "parallel",
        "model_type": "<class 'transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel'>",
        "transformers_version": "4.45.0",
    }  # fmt: skip
    d = tmp_path / "orig"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(config))
    state = {**rot.interventions[0].state_dict(), "embed_dim": torch.tensor(24)}
    torch.save(state, d / f"intkey_{keys[0]}.bin")
    torch.save({"source_representation": vec}, d / f"intkey_{keys[1]}.bin")
    loaded = pv.IntervenableModel.load(d, model=gpt2)
    base, source = ids(1, 5, 8), ids(1, 5, 9)
    locs = {"sources->base": ([[[1]], None], [[[2]], None])}
    got = loaded(base, [source, source], unit_locations=locs)[1].logits
    ref = pv.IntervenableModel(
        [{"layer": 1, "component": "block_output", "intervention": rot.interventions[0]},
         {"layer": 2, "component": "block_output", "intervention_type": pv.AdditionIntervention,
          "source_representation": vec}], gpt2,
    )  # fmt: skip
    assert torch.equal(got, ref(base, [source, source], unit_locations=locs)[1].logits)
    # a pickled object that is not a tensor container is refused by weights_only
    torch.save({"x": torch.ones(1), "obj": Path("x")}, d / f"intkey_{keys[1]}.bin")
    assert_refused(d, make_gpt2(seed=1), "weights_only")


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """HfApi's upload calls write into a local hub cache folder that snapshot_download
    (local_files_only=True) then reads: the same huggingface_hub code path as the real hub."""
    cache = tmp_path / "hub"
    uploaded = {}

    def create_repo(self, repo_id, **kw):
        uploaded["created"] = repo_id

    def upload_folder(self, folder_path, repo_id, allow_patterns=None, **kw):
        commit = "0" * 40
        root = cache / f"models--{repo_id.replace('/', '--')}"
        snap = root / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in Path(folder_path).iterdir():
            shutil.copy(f, snap / f.name)
        (root / "refs").mkdir()
        (root / "refs" / "main").write_text(commit)
        uploaded["files"] = sorted(p.name for p in snap.iterdir())

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return cache, uploaded


@pytest.mark.parametrize("how", ["save", "push_to_hub"])
def test_hub_save_and_load_through_local_cache(gpt2, tmp_path, monkeypatch, fake_hub, how):
    cache, uploaded = fake_hub
    repo = "someone/steer"
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.AdditionIntervention,
         "source_representation": torch.randn(24)}, gpt2,
    )  # fmt: skip
    if how == "save":
        pvm.save(tmp_path / "local", save_to_hf_hub=True, hf_repo_name=repo)
    else:
        pvm.push_to_hub(repo)
    assert uploaded == {"created": repo, "files": [CONFIG_NAME, WEIGHTS_NAME]}
    loaded = pv.IntervenableModel.load(repo, model=gpt2, cache_dir=cache, local_files_only=True)
    base = ids(1, 4, 10)
    assert torch.equal(loaded(base)[1].logits, pvm(base)[1].logits)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(pv.SerializationError, match="Hugging Face Hub"):
        pv.IntervenableModel.load("someone/absent", model=gpt2, cache_dir=cache)

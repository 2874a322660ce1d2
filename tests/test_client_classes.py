"""Client intervention classes (the original's tutorials, pyreft's pattern): the contract is
decided by isinstance against the original's mixins in any base order and matches a plain
torch hook; client classes save by import path, load only when already imported, and get
back only the constructor arguments they accept."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import hooked, ids, make_gpt2

import pyvene as pv
from pyvene.interventions.contract import contract
from pyvene.serialization import CONFIG_NAME

D = 24
POS = [1, 2, 4]  # three subject positions, as in the original causal-tracing tutorial


@pytest.fixture(scope="module")
def gpt2():
    return make_gpt2(seed=2)


def _shift_forward(self, base, source=None, subspaces=None):
    return base + self.delta.to(base.dtype)


def _shift_init(self, **kwargs):
    super(type(self), self).__init__(**kwargs)
    self.register_buffer("delta", torch.linspace(-1, 1, D))


# The tutorial's NoiseIntervention pattern, in both base orders.
class ShiftCL(pv.ConstantSourceIntervention, pv.LocalistRepresentationIntervention):
    __init__ = _shift_init
    forward = _shift_forward


class ShiftLC(pv.LocalistRepresentationIntervention, pv.ConstantSourceIntervention):
    __init__ = _shift_init
    forward = _shift_forward


def _mix_init(self, **kwargs):
    super(type(self), self).__init__(**kwargs)
    g = torch.Generator().manual_seed(0)
    self.proj = torch.nn.Linear(self.embed_dim, self.embed_dim)
    with torch.no_grad():
        self.proj.weight.copy_(torch.randn(self.embed_dim, self.embed_dim, generator=g) * 0.1)


def _mix_forward(self, base, source=None, subspaces=None):
    return base + self.proj(source - base)


# Distributed + Trainable in both orders: units flattened into one (B, U*D) vector.
class MixDT(pv.DistributedRepresentationIntervention, pv.TrainableIntervention):
    __init__ = _mix_init
    forward = _mix_forward


class MixTD(pv.TrainableIntervention, pv.DistributedRepresentationIntervention):
    __init__ = _mix_init
    forward = _mix_forward


# pyreft's LoReFT pattern: sets keep_last_dim itself, takes its own kwargs (here a dtype).
class Reft(pv.SourcelessIntervention, pv.TrainableIntervention, pv.DistributedRepresentationIntervention):  # fmt: skip
    def __init__(self, **kwargs):
        super().__init__(**kwargs, keep_last_dim=True)
        g = torch.Generator().manual_seed(1)
        rank, dtype = kwargs["low_rank_dimension"], kwargs.get("dtype", torch.bfloat16)
        self.learned_source = torch.nn.Linear(self.embed_dim, rank).to(dtype)
        with torch.no_grad():
            self.learned_source.weight.copy_(torch.randn(rank, self.embed_dim, generator=g))

    def forward(self, base, source=None, subspaces=None):
        w = self.learned_source.weight
        return base + (self.learned_source(base.to(w.dtype)) @ w).to(base.dtype)


class Explicit(pv.AdditionIntervention):
    """A client constructor with named parameters only (no **kwargs)."""

    def __init__(self, embed_dim=None, scale=1.0):
        super().__init__(embed_dim=embed_dim)
        self.scale = scale

    def forward(self, base, source=None, subspaces=None):
        return base + self.scale * source


def block(model, layer):
    return model.transformer.h[layer]


def test_localist_client_in_both_orders_matches_plain_hook(gpt2):
    base = ids(2, 6, 0)
    delta = torch.linspace(-1, 1, D)

    def add(x):
        x = x.clone()
        x[:, POS] += delta
        return x

    handle = hooked(block(gpt2, 1), "output", add)
    try:
        want = gpt2(**base).logits
    finally:
        handle.remove()
    for cls in (ShiftCL, ShiftLC):
        assert contract(cls(embed_dim=D)).distributed is False
        assert cls(embed_dim=D).is_repr_distributed is False
        pvm = pv.IntervenableModel({"layer": 1, "intervention_type": cls}, gpt2)
        _, out = pvm(base, unit_locations={"base": [[POS, POS]]})
        torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)


def test_distributed_client_in_both_orders_flattens_units(gpt2):
    base, src = ids(1, 6, 3), ids(1, 6, 4)
    with torch.no_grad():
        h_src = gpt2(**src, output_hidden_states=True).hidden_states[2]
    for cls in (MixDT, MixTD):
        iv = cls(embed_dim=2 * D)
        c = contract(iv)
        assert c.flatten and c.trainable and c.needs_source
        flat_src = h_src[:, [1, 3]].reshape(1, -1)

        def mix(x, iv=iv, flat_src=flat_src):
            x = x.clone()
            flat = x[:, [1, 3]].reshape(1, -1)
            x[:, [1, 3]] = (flat + iv.proj(flat_src - flat)).reshape(1, 2, D)
            return x

        handle = hooked(block(gpt2, 1), "output", mix)
        try:
            want = gpt2(**base).logits
        finally:
            handle.remove()
        rep = {"layer": 1, "max_number_of_units": 2, "intervention": iv}
        pvm = pv.IntervenableModel(rep, gpt2)
        _, out = pvm(base, [src], unit_locations={"sources->base": ([[[1, 3]]], [[[1, 3]]])})
        torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)
        assert [p for p in pvm.get_trainable_parameters()] == list(iv.parameters())


def test_instance_value_wins_and_plain_module_defaults():
    iv = pv.VanillaIntervention(embed_dim=D)
    assert contract(iv).needs_source
    iv.set_source_representation(torch.zeros(D))
    assert not contract(iv).needs_source
    plain = torch.nn.Identity()
    c = contract(plain)
    assert not c.flatten and c.needs_source and not c.trainable


def test_pyreft_pattern_saves_loads_with_its_own_kwargs(gpt2, tmp_path):
    iv = Reft(embed_dim=D, low_rank_dimension=4, dtype=torch.float32)
    c = contract(iv)
    assert c.source_constant and c.trainable and c.keep_last_dim and not c.flatten
    pvm = pv.IntervenableModel({"layer": 1, "low_rank_dimension": 4, "intervention": iv}, gpt2)
    base = ids(2, 6, 5)
    w = iv.learned_source.weight.detach()

    def reft(x):
        x = x.clone()
        x[:, [2]] = x[:, [2]] + (x[:, [2]] @ w.T + iv.learned_source.bias.detach()) @ w
        return x

    handle = hooked(block(gpt2, 1), "output", reft)
    try:
        want = gpt2(**base).logits
    finally:
        handle.remove()
    _, out = pvm(base, unit_locations={"sources->base": (None, [[[2]] * 2])})
    torch.testing.assert_close(out.logits, want, atol=1e-5, rtol=0)
    pvm.save(tmp_path / "reft")
    entry = json.loads((tmp_path / "reft" / CONFIG_NAME).read_text())["interventions"][0]
    assert entry["type"] == f"{__name__}:Reft"
    assert entry["kwargs"] == {"low_rank_dimension": 4, "dtype": {"torch.dtype": "float32"}}
    loaded = pv.IntervenableModel.load(tmp_path / "reft", gpt2)  # no duplicate keep_last_dim
    assert loaded.interventions[0].learned_source.weight.dtype == torch.float32
    _, again = loaded(base, unit_locations={"sources->base": (None, [[[2]] * 2])})
    assert torch.equal(again.logits, out.logits)


def test_only_accepted_constructor_args_are_passed_back(gpt2, tmp_path):
    rep = {"layer": 1, "intervention": Explicit(embed_dim=D, scale=0.5)}
    pvm = pv.IntervenableModel(rep, gpt2)
    pvm.save(tmp_path / "ex")
    loaded = pv.IntervenableModel.load(tmp_path / "ex", gpt2)
    assert loaded.interventions[0].scale == 0.5
    # built from a config too: representation fields it does not take are not passed
    from_cfg = pv.IntervenableModel({"layer": 1, "intervention_type": Explicit}, gpt2)
    assert from_cfg.interventions[0].embed_dim == D
    path = tmp_path / "ex" / CONFIG_NAME
    data = json.loads(path.read_text())
    data["interventions"][0]["kwargs"]["sclae"] = 2.0
    path.write_text(json.dumps(data))
    with pytest.raises(pv.SerializationError, match="sclae"):
        pv.IntervenableModel.load(tmp_path / "ex", gpt2)


def test_class_not_imported_is_named_and_nothing_is_imported(gpt2, tmp_path):
    pv.IntervenableModel({"layer": 1, "intervention_type": ShiftCL}, gpt2).save(tmp_path / "s")
    path = tmp_path / "s" / CONFIG_NAME
    data = json.loads(path.read_text())
    assert data["interventions"][0]["type"] == f"{__name__}:ShiftCL"
    module = "pyvene_never_imported_pkg.interventions"
    data["interventions"][0]["type"] = f"{module}:ShiftCL"
    path.write_text(json.dumps(data))
    with pytest.raises(pv.SerializationError) as err:
        pv.IntervenableModel.load(tmp_path / "s", gpt2)
    assert f"from {module} import ShiftCL" in str(err.value)
    assert module not in sys.modules and "pyvene_never_imported_pkg" not in sys.modules
    data["interventions"][0]["type"] = "os:system"  # an imported module, not a class
    path.write_text(json.dumps(data))
    with pytest.raises(pv.SerializationError, match="not an intervention class"):
        pv.IntervenableModel.load(tmp_path / "s", gpt2)


def test_unknown_constructor_argument_is_refused():
    with pytest.raises(pv.ConfigError, match="embd_dim.*Did you mean 'embed_dim'"):
        pv.VanillaIntervention(embd_dim=3)
    with pytest.raises(pv.ConfigError, match="noise_levl"):
        pv.NoiseIntervention(noise_levl=0.1)
    assert pv.NoiseIntervention(noise_leve=0.2).noise_level == 0.2  # the original's spelling


def test_swapped_model_output_shape_error_names_the_intervention(gpt2):
    pvm = pv.IntervenableModel(
        {"layer": 0, "intervention": lambda b, s: b[..., :3]}, gpt2
    )  # fmt: skip
    with pytest.raises(pv.DimensionMismatchError, match="LambdaIntervention returned shape"):
        pvm(ids(1, 5, 0), unit_locations={"base": 1})
    from pyvene.families import HookSite
    from pyvene.gather import scatter

    site = HookSite(torch.nn.Identity(), "h.0", "output", "block_output", 0, 4)
    with pytest.raises(pv.DimensionMismatchError, match="block_output") as err:
        scatter(torch.zeros(1, 3, 4), site, None, torch.zeros(2))
    assert "returned" not in str(err.value)  # a plain scatter blames no intervention


class Redraw(Reft):
    """A client whose ``load_state_dict`` first re-initializes from the global RNG (as pyreft's
    LoReFT rebuilds its orthogonal rotation), then copies the saved values."""

    def load_state_dict(self, state_dict, *args, **kwargs):
        torch.nn.init.normal_(self.learned_source.weight)
        return super().load_state_dict(state_dict, *args, **kwargs)


def test_load_intervention_leaves_the_global_rng_alone(gpt2, tmp_path):
    """A resumed Trainer run draws its data order from the global RNG after loading the
    checkpoint: a client's random re-init inside load_state_dict must not shift it."""
    rep = {"layer": 1, "low_rank_dimension": 4}
    saved = pv.IntervenableModel(dict(rep, intervention=Redraw(embed_dim=D, low_rank_dimension=4, dtype=torch.float32)), gpt2)  # fmt: skip
    saved.save_intervention(tmp_path / "ckpt")
    torch.manual_seed(1)
    fresh = Redraw(embed_dim=D, low_rank_dimension=4, dtype=torch.float32)
    with torch.no_grad():
        fresh.learned_source.weight.zero_()
    pvm = pv.IntervenableModel(dict(rep, intervention=fresh), gpt2)
    torch.manual_seed(7)
    want = torch.rand(5)  # what the next draw is without a load in between
    torch.manual_seed(7)
    pvm.load_intervention(tmp_path / "ckpt")
    assert torch.equal(torch.rand(5), want)
    for k, v in saved.interventions[0].state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k

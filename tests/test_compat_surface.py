"""The original pyvene's public surface (SPEC B §1.1, §1.2, §8): top-level names, import paths,
utilities and factories, each checked against an independent computation."""

from __future__ import annotations

import importlib
import math
import random

import numpy as np
import pytest
import torch
from conftest import VOCAB, ids, make_gpt2, make_llama
from torch import nn
from transformers import GPT2LMHeadModel

import pyvene as pv
from pyvene.models.constants import (
    split_half,
    split_head_and_permute,
    split_heads,
    split_three,
)

TOP_LEVEL = """CausalModel IntervenableModel IntervenableNdifModel build_intervenable_model
IntervenableConfig RepresentationConfig Intervention TrainableIntervention
BasisAgnosticIntervention SharedWeightsTrainableIntervention SkipIntervention
VanillaIntervention AdditionIntervention SubtractionIntervention RotatedSpaceIntervention
BoundlessRotatedSpaceIntervention SigmoidMaskRotatedSpaceIntervention
LowRankRotatedSpaceIntervention PCARotatedSpaceIntervention CollectIntervention
ConstantSourceIntervention ZeroIntervention LocalistRepresentationIntervention
DistributedRepresentationIntervention SourcelessIntervention NoiseIntervention
SigmoidMaskIntervention AutoencoderIntervention JumpReLUAutoencoderIntervention
InterventionOutput get_type_from_string create_directory embed_to_distrib set_seed
sigmoid_boundary harmonic_sigmoid_boundary count_parameters random_permutation_matrix
closeness_to_permutation_loss format_token top_vals get_list_depth get_batch_size GET_LOC
_do_intervention_by_swap type_to_module_mapping type_to_dimension_mapping create_gpt2
create_gpt2_lm create_blip create_blip_itm create_gpt_neo create_gpt_neox create_gru
create_gru_lm create_gru_classifier create_llava GRUConfig create_llama create_mlp_classifier
create_backpack_gpt2 create_olmo create_gpt_oss list_components format_components MLPConfig
MLPModel MLPForClassification GRUModel GRUForClassification GRULMHeadModel""".split()

# import path -> names that must be the same objects as pyvene's own
PATHS = {
    "pyvene.models.mlp.modelings_mlp": ["MLPConfig", "MLPModel", "MLPForClassification"],
    "pyvene.models.gru.modelings_gru": [
        "GRUConfig", "GRUModel", "GRULMHeadModel", "GRUForClassification",
    ],
    "pyvene.models.intervenable_base": ["IntervenableModel", "IntervenableModelOutput"],
    "pyvene.models.configuration_intervenable_model": [
        "IntervenableConfig", "RepresentationConfig",
    ],
    "pyvene.models.interventions": ["VanillaIntervention", "RotatedSpaceIntervention"],
    "pyvene.models.intervention_utils": ["_do_intervention_by_swap"],
    "pyvene.models.basic_utils": ["embed_to_distrib", "top_vals", "format_token"],
    "pyvene.models.gpt2.modelings_intervenable_gpt2": ["create_gpt2", "create_gpt2_lm"],
    "pyvene.models.llama.modelings_intervenable_llama": ["create_llama"],
    "pyvene.models.mlp.modelings_intervenable_mlp": ["create_mlp_classifier"],
    "pyvene.models.gru.modelings_intervenable_gru": [
        "create_gru", "create_gru_lm", "create_gru_classifier",
    ],
    "pyvene.models.gpt_neo.modelings_intervenable_gpt_neo": ["create_gpt_neo"],
    "pyvene.models.gpt_neox.modelings_intervenable_gpt_neox": ["create_gpt_neox"],
    "pyvene.models.olmo.modelings_intervenable_olmo": ["create_olmo"],
    "pyvene.models.llava.modelings_intervenable_llava": ["create_llava"],
    "pyvene.models.blip.modelings_intervenable_blip": ["create_blip"],
    "pyvene.models.blip.modelings_intervenable_blip_itm": ["create_blip_itm"],
}  # fmt: skip


def test_top_level_names_exist():
    assert [n for n in TOP_LEVEL if not hasattr(pv, n)] == []


@pytest.mark.parametrize("path", sorted(PATHS))
def test_import_paths_expose_the_same_objects(path):
    module = importlib.import_module(path)
    for name in PATHS[path]:
        assert getattr(module, name) is getattr(pv, name), (path, name)


def test_models_attribute_and_constants():
    c = pv.models.constants
    assert c.CONST_INPUT_HOOK == "register_forward_pre_hook"
    assert c.CONST_OUTPUT_HOOK == "register_forward_hook"
    assert c.CONST_GRAD_HOOK == "register_hook"
    for name in (c.CONST_INPUT_HOOK, c.CONST_OUTPUT_HOOK):
        assert callable(getattr(nn.Linear(2, 2), name))
    assert callable(getattr(torch.zeros(1, requires_grad=True), c.CONST_GRAD_HOOK))


def test_star_import_of_modeling_utils():
    namespace: dict = {}
    exec("from pyvene.models.modeling_utils import *", namespace)
    for name in ("gather_neurons", "scatter_neurons", "output_to_subcomponent", "hf_models",
                 "LambdaIntervention", "getattr_for_torch_module", "torch"):  # fmt: skip
        assert name in namespace
    assert namespace["hf_models"].gpt2.modeling_gpt2.GPT2LMHeadModel is GPT2LMHeadModel


# --------------------------------------------------------------------------- constants


def test_split_functions_against_manual_slices():
    x = torch.arange(2 * 3 * 12.0).view(2, 3, 12)
    for i in range(3):
        torch.testing.assert_close(split_three(x, i), x[..., 4 * i : 4 * (i + 1)])
    torch.testing.assert_close(split_half(x, 1), x[..., 6:])
    manual = torch.empty(2, 4, 3, 3)
    for b in range(2):
        for h in range(4):
            for s in range(3):
                manual[b, h, s] = x[b, s, 3 * h : 3 * h + 3]
    torch.testing.assert_close(split_heads(x, 4, 3), manual)
    torch.testing.assert_close(split_head_and_permute(x, 4), manual)
    with pytest.raises(ValueError, match="does not split into 5"):
        pv.models.constants.split_and_select(x, 5, 0)


# --------------------------------------------------------------------------- basic_utils


def test_sigmoid_boundary_closed_form():
    x = torch.tensor([-2.0, 0.5, 3.0, 7.5])
    got = pv.sigmoid_boundary(x, 0.0, 4.0, 0.5)

    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    expect = [sig((v - 0.0) / 0.5) * sig((4.0 - v) / 0.5) for v in x.tolist()]
    torch.testing.assert_close(got, torch.tensor(expect))


def test_harmonic_sigmoid_boundary_piecewise():
    lo, hi, t = 1.0, 5.0, 0.7
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 5.0, 6.5])
    got = pv.harmonic_sigmoid_boundary(x, lo, hi, t)

    def sig(v):
        return 1.0 / (1.0 + math.exp(-v))

    def ref(v):
        if v <= lo:
            return sig((v - lo) / t)
        if v >= hi:
            return sig((hi - v) / t)
        h = 1.0 / (0.5 * (1.0 / abs(v - lo) + 1.0 / abs(v - hi)))
        return sig(h / t)

    torch.testing.assert_close(got, torch.tensor([ref(v) for v in x.tolist()]))


def test_count_parameters_counts_trainable_elements():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    assert pv.count_parameters(net) == (3 * 4 + 4) + (4 * 2 + 2)
    net[0].weight.requires_grad_(False)
    assert pv.count_parameters(net) == 4 + (4 * 2 + 2)


def test_permutation_matrix_and_closeness_loss():
    torch.manual_seed(0)
    p = pv.random_permutation_matrix(6)
    assert set(p.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(p.sum(0), torch.ones(6))
    torch.testing.assert_close(p.sum(1), torch.ones(6))
    assert pv.closeness_to_permutation_loss(p).item() == 0.0
    r = torch.tensor([[0.5, 0.5], [0.5, 1.0]])
    rows = (abs(1.0 - 1) + abs(1.5 - 1)) / 2
    cols = (abs(1.0 - 1) + abs(1.5 - 1)) / 2
    entry = (0.25 + 0.25 + 0.25 + 0.0) / 4
    assert pv.closeness_to_permutation_loss(r).item() == pytest.approx(0.5 * (rows + cols) + entry)


def test_set_seed_seeds_every_generator():
    pv.set_seed(11)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    pv.set_seed(11)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_list_depth_batch_size_get_loc_and_directory(tmp_path):
    assert pv.get_list_depth(3) == 0
    assert pv.get_list_depth([]) == 1
    assert pv.get_list_depth([[1], [[2]]]) == 3
    assert pv.get_batch_size(torch.zeros(5, 2)) == 5
    assert pv.get_batch_size({"input_ids": torch.zeros(4, 7)}) == 4
    assert pv.GET_LOC((2, 5), batch_size=2) == [[[[2], [2]], [[5], [5]]]]
    with pytest.raises(NotImplementedError):
        pv.GET_LOC((2, 5), unit="pos")
    target = tmp_path / "a" / "b"
    pv.create_directory(target)
    pv.create_directory(target)  # idempotent
    assert target.is_dir()


def test_get_type_from_string_resolves_only_known_places():
    assert pv.get_type_from_string(
        "<class 'pyvene.models.interventions.VanillaIntervention'>"
    ) is pv.VanillaIntervention  # fmt: skip
    assert pv.get_type_from_string("<class 'torch.nn.modules.linear.Linear'>") is nn.Linear
    with pytest.raises(pv.PyveneError, match="neither a registered intervention"):
        pv.get_type_from_string("<class 'os.system'>")


@pytest.mark.parametrize("kind", ["gpt2_lm", "gpt2_base", "llama_lm"])
def test_embed_to_distrib_applies_the_unembedding(kind):
    inputs = ids(2, 5, 0)
    if kind == "llama_lm":
        model = make_llama()
        hidden = model.model(**inputs).last_hidden_state
        logits = hidden @ model.lm_head.weight.T
    else:
        lm = make_gpt2()
        model = lm if kind == "gpt2_lm" else lm.transformer
        hidden = lm.transformer(**inputs).last_hidden_state
        logits = hidden @ lm.transformer.wte.weight.T
    hidden = hidden.detach()
    logits = logits.detach()
    got = pv.embed_to_distrib(model, hidden, logits=True)
    torch.testing.assert_close(got, logits, rtol=1e-5, atol=1e-5)
    if kind != "gpt2_base":  # the LM head's own logits agree
        torch.testing.assert_close(got, model(**inputs).logits.detach(), rtol=1e-5, atol=1e-5)
    probs = pv.embed_to_distrib(model, hidden)
    torch.testing.assert_close(probs, torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True))
    torch.testing.assert_close(
        pv.embed_to_distrib(model, hidden, log=True),
        logits - torch.logsumexp(logits, -1, keepdim=True),
    )
    assert probs.shape == (2, 5, VOCAB)


def test_embed_to_distrib_refuses_untied_base_model():
    llama = make_llama()
    with pytest.raises(pv.PyveneError, match="LM head or tied input embeddings"):
        pv.embed_to_distrib(llama.model, torch.zeros(1, 2, 32))


class FakeTokenizer:
    def decode(self, tok):
        tok = tok if isinstance(tok, int) else int(tok)
        return {0: " the", 1: "cat\n", 2: "sat", 3: "!"}[tok]


def test_format_token_and_top_vals(capsys):
    tok = FakeTokenizer()
    assert pv.format_token(tok, 0) == "_the"
    assert pv.format_token(tok, 1) == "cat\\n"
    res = torch.tensor([0.1, 0.7, 0.05, 0.15])
    assert pv.top_vals(tok, res, n=2, return_results=True) == [
        ("cat\\n", pytest.approx(0.7)),
        ("!", pytest.approx(0.15)),
    ]
    assert pv.top_vals(tok, res, n=1) is None
    shown = "cat\\n"
    assert capsys.readouterr().out == f"{shown:<20} {res[1].item()}\n"


# --------------------------------------------------------------------------- modeling_utils


def test_gather_neurons_against_slicing():
    from pyvene.models.modeling_utils import UnsupportedUnitError, gather_neurons

    x = torch.rand(5, 3, 2)
    torch.testing.assert_close(gather_neurons(x, "pos", [[0, 1]] * 5), x[:, 0:2])
    torch.testing.assert_close(gather_neurons(x, "h", [[2, 0]] * 5), x[:, [2, 0]])
    per_example = [[2], [0], [1], [1], [0]]
    want = torch.stack([x[b, per_example[b]] for b in range(5)])
    torch.testing.assert_close(gather_neurons(x, "pos", per_example), want)
    heads = torch.rand(5, 4, 3, 2)  # (B, H, S, Dh)
    got = gather_neurons(heads, "h.pos", ([[1, 2]] * 5, [[0, 1]] * 5))
    torch.testing.assert_close(got, heads[:, 1:3, 0:2])
    assert gather_neurons(x, "t", None) is x
    with pytest.raises(AssertionError, match="Unit = dim"):
        gather_neurons(x, "dim", [[0]] * 5)
    assert issubclass(UnsupportedUnitError, pv.PyveneError)


def _gpt2_config():
    from transformers import GPT2Config

    return GPT2Config(n_embd=6, n_head=3, n_layer=4, vocab_size=10, n_positions=20)


def test_scatter_neurons_positions_in_place():
    from pyvene.models.modeling_utils import scatter_neurons

    x = torch.rand(2, 5, 6)
    value = torch.rand(2, 2, 6)
    golden = x.clone()
    golden[:, 1:3] = value
    out = scatter_neurons(x, value, "attention_input", "pos", [[1, 2]] * 2, GPT2LMHeadModel,
                          _gpt2_config(), False)  # fmt: skip
    assert out is x
    torch.testing.assert_close(out, golden)
    y = torch.rand(2, 5, 6)
    golden = y.clone()
    golden[1, 4] = value[1, 0]
    scatter_neurons(y, value[:, :1], "block_output", "pos", [None, [4]], GPT2LMHeadModel,
                    _gpt2_config(), False)  # fmt: skip
    torch.testing.assert_close(y, golden)


def test_scatter_neurons_heads_of_a_fused_qkv():
    from pyvene.models.modeling_utils import scatter_neurons

    x = torch.arange(180).view(2, 5, 18)
    value = torch.arange(180, 196).view(2, 2, 2, 2)  # (B, heads, positions, Dh)
    golden = x.clone().view(2, 5, 3, 3, 2)  # (B, S, qkv, H, Dh)
    golden[:, 0:2, 2, 1:3] = value.permute(0, 2, 1, 3)
    out = scatter_neurons(x, value, "head_value_output", "h.pos", ([[1, 2]] * 2, [[0, 1]] * 2),
                          GPT2LMHeadModel, _gpt2_config(), False)  # fmt: skip
    torch.testing.assert_close(out.view(2, 5, 3, 3, 2), golden)


def test_scatter_then_gather_round_trip_on_attention_heads():
    from pyvene.models.modeling_utils import gather_neurons, output_to_subcomponent, scatter_neurons

    src = torch.rand(2, 3, 5, 2)  # (B, H, S, Dh)
    picked = gather_neurons(src, "h.pos", ([[1, 2]] * 2, [[0, 1]] * 2))
    x = torch.rand(2, 5, 6)
    golden = x.clone().view(2, 5, 3, 2)
    golden[:, 0:2, 1:3] = picked.permute(0, 2, 1, 3)
    scatter_neurons(x, picked, "head_attention_value_output", "h.pos",
                    ([[1, 2]] * 2, [[0, 1]] * 2), GPT2LMHeadModel, _gpt2_config(), False)  # fmt: skip
    torch.testing.assert_close(x.view(2, 5, 3, 2), golden)
    sub = output_to_subcomponent(x, "head_attention_value_output", GPT2LMHeadModel,
                                 _gpt2_config())  # fmt: skip
    torch.testing.assert_close(sub, x.view(2, 5, 3, 2).permute(0, 2, 1, 3))
    qkv = torch.rand(2, 5, 18)
    sub = output_to_subcomponent(qkv, "query_output", GPT2LMHeadModel, _gpt2_config())
    torch.testing.assert_close(sub, qkv[..., :6])
    assert output_to_subcomponent(qkv, "h[0].attn.output", GPT2LMHeadModel, _gpt2_config()) is qkv


def test_getattr_module_hook_and_dimension():
    from pyvene.models.modeling_utils import (
        get_dimension_by_component,
        get_module_hook,
        getattr_for_torch_module,
    )

    model = make_gpt2()
    assert getattr_for_torch_module(model, "transformer.h[1].mlp") is model.transformer.h[1].mlp
    assert getattr_for_torch_module(model.config, "n_embd") == model.config.n_embd
    rep = pv.RepresentationConfig(1, "attention_value_output")
    hook = get_module_hook(model, rep)
    assert hook.__self__ is model.transformer.h[1].attn.c_proj
    assert hook.__name__ == "register_forward_pre_hook"
    assert get_dimension_by_component(GPT2LMHeadModel, model.config, "block_output") == 24


def test_do_intervention_flattens_distributed_units():
    from pyvene.models.modeling_utils import do_intervention

    base, source = torch.rand(2, 3, 4), torch.rand(2, 3, 4)
    torch.testing.assert_close(
        do_intervention(base, source, lambda b, s: b + s, None), base + source
    )
    seen = {}

    class Record(pv.DistributedRepresentationIntervention, pv.Intervention):
        def forward(self, b, s=None, subspaces=None, **kwargs):
            seen["shape"] = tuple(b.shape)
            return s

    out = do_intervention(base, source, Record(embed_dim=12), None)
    assert seen["shape"] == (2, 12)
    torch.testing.assert_close(out, source)
    van = do_intervention(base, source, pv.VanillaIntervention(embed_dim=12), None)
    torch.testing.assert_close(van, source)


# --------------------------------------------------------------------------- factories


def _read_block(model, module, inputs):
    store = {}

    def hook(mod, args, out):
        store["x"] = out[0] if isinstance(out, tuple) else out  # returns None: read only

    h = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        h.remove()
    return store["x"]


@pytest.mark.parametrize(
    "factory,block",
    [
        (pv.create_gpt_neo, lambda m: m.transformer.h[1]),
        (pv.create_gpt_neox, lambda m: m.gpt_neox.layers[1]),
        (pv.create_olmo, lambda m: m.model.layers[1]),
    ],
)
def test_text_factories_build_seeded_models_that_wrap(factory, block):
    config, tokenizer, model = factory(seed=3)
    _, _, again = factory(seed=3)
    assert tokenizer is None and not model.training
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 again.state_dict().values()))  # fmt: skip
    inputs = {
        "input_ids": torch.randint(1, 100, (2, 6), generator=torch.Generator().manual_seed(0))
    }
    expect = _read_block(model, block(model), inputs)
    pvm = pv.IntervenableModel(
        {"layer": 1, "component": "block_output", "intervention_type": pv.CollectIntervention},
        model,
    )
    (_, collected), _ = pvm(inputs)
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)


def test_multimodal_factories_return_the_original_tuples():
    config, tok, model, processor = pv.create_llava()
    assert type(model).__name__ == "LlavaForConditionalGeneration" and processor is None
    assert config.text_config.hidden_size == 32
    for factory, name in ((pv.create_blip, "BlipForQuestionAnswering"),
                          (pv.create_blip_itm, "BlipForImageTextRetrieval")):  # fmt: skip
        config, processor, model = factory()
        assert type(model).__name__ == name and processor is None
        assert config.vision_config.image_size == 16


def test_factories_load_a_local_folder_and_never_download(tmp_path):
    _, _, model = pv.create_gpt2_lm(seed=5)
    model.save_pretrained(tmp_path)
    config, tok, loaded = pv.create_gpt2_lm(str(tmp_path))
    assert tok is None
    sa, sb = model.state_dict(), loaded.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(FileNotFoundError, match="never download"):
        pv.create_gpt_neox("EleutherAI/pythia-70m")


def test_mlp_and_gru_factories_and_unsupported_ones():
    cfg = pv.MLPConfig(h_dim=4, n_layer=1, num_classes=3, pdrop=0.0)
    _, tok, mlp = pv.create_mlp_classifier(cfg)
    assert tok is None and isinstance(mlp, pv.MLPForClassification)
    x = torch.rand(2, 1, 4)
    block = mlp.mlp.h[0]
    expect = mlp.score(torch.nn.functional.gelu(block.ff1(x))).squeeze(1)
    torch.testing.assert_close(mlp(inputs_embeds=x)[0], expect)
    gcfg = pv.GRUConfig(h_dim=4, n_layer=1, pdrop=0.0)
    for factory, cls in ((pv.create_gru, pv.GRUModel), (pv.create_gru_lm, pv.GRULMHeadModel),
                         (pv.create_gru_classifier, pv.GRUForClassification)):  # fmt: skip
        assert isinstance(factory(gcfg)[2], cls)
    for factory in (pv.create_backpack_gpt2, pv.create_gpt_oss):
        with pytest.raises(pv.PyveneError, match="Supported factories: create_gpt2"):
            factory()


def test_ndif_backend_is_refused_and_builder_wraps_natively():
    with pytest.raises(pv.PyveneError, match="nnsight backend is not supported"):
        pv.IntervenableNdifModel({"layer": 0, "component": "block_output"}, make_gpt2())
    model = make_gpt2()
    rep = {"layer": 0, "component": "block_output", "intervention_type": pv.CollectIntervention}
    pvm = pv.build_intervenable_model(rep, model)
    assert isinstance(pvm, pv.IntervenableModel)
    inputs = ids(1, 4, 0)
    (_, collected), _ = pvm(inputs)
    torch.testing.assert_close(collected[0], _read_block(model, model.transformer.h[0], inputs))


def test_list_and_format_components_match_the_family_table():
    model = make_gpt2()
    rows = {r["component"]: r for r in pv.list_components(model)}
    assert set(rows) == set(pv.components_of(model))
    assert rows["mlp_output"]["module"] == "transformer.h.0.mlp"
    assert "mlp_output" in pv.format_components(model)

"""The original pyvene's public surface (SPEC B §1.1, §1.2, §8): top-level names, import paths
and model factories, each checked against an independent computation (utilities:
tests/test_compat_utils.py, tests/test_compat_modeling_utils.py)."""

from __future__ import annotations

import importlib

import pytest
import torch
from conftest import captured, ids, make_gpt2
from torch import nn
from transformers import GPT2LMHeadModel

import pyvene as pv

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


# --------------------------------------------------------------------------- factories


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
    expect = captured(model, block(model), "output", inputs)
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
    torch.testing.assert_close(
        collected[0], captured(model, model.transformer.h[0], "output", inputs)
    )


def test_list_and_format_components_match_the_family_table():
    model = make_gpt2()
    rows = {r["component"]: r for r in pv.list_components(model)}
    assert set(rows) == set(pv.components_of(model))
    assert rows["mlp_output"]["module"] == "transformer.h.0.mlp"
    assert "mlp_output" in pv.format_components(model)

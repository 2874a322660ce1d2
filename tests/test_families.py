"""Conformance of every registered family table: for each model type a tiny seeded random model
(no downloads), and for every component of its table:

* Collect (no locations) equals what a plain torch hook reads on the submodule, reached here by
  attribute access written in this file (not through pyvene's resolver), split the way this
  file says (fused slices, heads);
* the declared width and head split match that tensor;
* a Vanilla patch at chosen positions (heads x positions for head components) equals a manual
  hook patch.

Llama-like types use GQA (4 query heads, 2 key/value heads) and head_dim 16 != hidden/heads 8.
GPT-NeoX's fused QKV is checked against a plain ``view(B, S, H, 3, Dh)``; OPT's token-flattened
MLP tensors against a plain ``view(B, S, W)`` of the (B * S, W) tensor.
"""

from __future__ import annotations

import pytest
import torch
import transformers as T
from conftest import hooked
from transformers.utils import logging

import pyvene as pv
from pyvene.families import FAMILIES
from pyvene.models import GRUConfig, GRUForClassification, MLPConfig, MLPForClassification

logging.set_verbosity_error()
V = 60  # vocab
LAYER = 1

# --------------------------------------------------------------------------- tiny models
TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48)
GQA = dict(TEXT, num_key_value_heads=2, head_dim=16, vocab_size=V, max_position_embeddings=64)
GQA_IDS = dict(bos_token_id=0, eos_token_id=0, pad_token_id=0)

LLAMA_LIKE = {
    "llama": ("LlamaConfig", "LlamaForCausalLM"),
    "mistral": ("MistralConfig", "MistralForCausalLM"),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
    "gemma": ("GemmaConfig", "GemmaForCausalLM"),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
    "olmo": ("OlmoConfig", "OlmoForCausalLM"),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM"),
}


def _ids(batch, seq, seed, low=1, high=V):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (batch, seq), generator=g)


def _rand(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def text_inputs(batch, seed):
    return {"input_ids": _ids(batch, 7, seed)}


def build(model_type):  # noqa: C901  # #14: refactor
    """(model, inputs(batch, seed) -> dict)."""
    torch.manual_seed(0)
    if model_type in LLAMA_LIKE:
        cfg_name, cls = LLAMA_LIKE[model_type]
        cfg = getattr(T, cfg_name)(**GQA, **GQA_IDS)
        return getattr(T, cls)(cfg), text_inputs
    if model_type == "mixtral":
        cfg = T.MixtralConfig(**GQA, **GQA_IDS, num_local_experts=4, num_experts_per_tok=2)
        return T.MixtralForCausalLM(cfg), text_inputs
    if model_type == "phi":
        cfg = T.PhiConfig(**{**GQA, "head_dim": 8}, **GQA_IDS, resid_pdrop=0.0)
        return T.PhiForCausalLM(cfg), text_inputs
    if model_type == "phi3":
        cfg = T.Phi3Config(**{**GQA, "head_dim": 8}, **GQA_IDS)
        return T.Phi3ForCausalLM(cfg), text_inputs
    if model_type == "gpt2":
        cfg = T.GPT2Config(n_embd=32, n_head=4, n_layer=2, vocab_size=V, n_positions=64)
        return T.GPT2LMHeadModel(cfg), text_inputs
    if model_type == "gpt_neo":
        cfg = T.GPTNeoConfig(
            hidden_size=32, num_layers=2, num_heads=4, vocab_size=V, max_position_embeddings=64,
            attention_types=[[["global", "local"], 1]], window_size=4,
        )  # fmt: skip
        return T.GPTNeoForCausalLM(cfg), text_inputs
    if model_type == "gpt_neox":
        cfg = T.GPTNeoXConfig(**TEXT, vocab_size=V, max_position_embeddings=64)
        return T.GPTNeoXForCausalLM(cfg), text_inputs
    if model_type == "opt":
        cfg = T.OPTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=48,
            vocab_size=V, word_embed_proj_dim=32, max_position_embeddings=64, pad_token_id=0,
        )  # fmt: skip
        return T.OPTForCausalLM(cfg), text_inputs
    if model_type in ("bert", "roberta"):
        cls = T.BertForMaskedLM if model_type == "bert" else T.RobertaForMaskedLM
        cfg_cls = T.BertConfig if model_type == "bert" else T.RobertaConfig
        cfg = cfg_cls(**TEXT, vocab_size=V, max_position_embeddings=64, pad_token_id=0)
        return cls(cfg), text_inputs
    if model_type == "esm":
        cfg = T.EsmConfig(
            **TEXT, vocab_size=V, pad_token_id=1, mask_token_id=2, max_position_embeddings=64
        )
        return T.EsmForMaskedLM(cfg), text_inputs
    if model_type == "mamba":
        cfg = T.MambaConfig(hidden_size=16, num_hidden_layers=2, vocab_size=V, state_size=4)
        return T.MambaForCausalLM(cfg), text_inputs
    if model_type == "blip":
        small = dict(TEXT, num_attention_heads=4)
        cfg = T.BlipConfig(
            text_config=dict(**small, vocab_size=V, max_position_embeddings=64),
            vision_config=dict(**small, image_size=16, patch_size=8),
            projection_dim=32, image_text_hidden_size=32,
        )  # fmt: skip

        def blip_inputs(batch, seed):
            return {
                "input_ids": _ids(batch, 7, seed),
                "pixel_values": _rand((batch, 3, 16, 16), seed),
            }

        return T.BlipForImageTextRetrieval(cfg), blip_inputs
    if model_type == "llava":
        text = T.LlamaConfig(**GQA, **GQA_IDS)
        vision = T.CLIPVisionConfig(**TEXT, image_size=16, patch_size=8)
        cfg = T.LlavaConfig(text_config=text, vision_config=vision, image_token_index=V - 1)

        def llava_inputs(batch, seed):
            ids = _ids(batch, 7, seed, high=V - 1)
            ids[:, 1:5] = V - 1  # 4 image tokens = (16 / 8) ** 2 patches
            return {"input_ids": ids, "pixel_values": _rand((batch, 3, 16, 16), seed)}

        return T.LlavaForConditionalGeneration(cfg), llava_inputs
    if model_type == "whisper":
        cfg = T.WhisperConfig(
            d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=48, decoder_ffn_dim=40, num_mel_bins=8,
            max_source_positions=8, max_target_positions=32, vocab_size=V, pad_token_id=0,
            bos_token_id=0, eos_token_id=0, decoder_start_token_id=0,
        )  # fmt: skip

        def whisper_inputs(batch, seed):
            return {
                "input_features": _rand((batch, 8, 16), seed),
                "decoder_input_ids": _ids(batch, 5, seed),
            }

        return T.WhisperForConditionalGeneration(cfg), whisper_inputs
    if model_type == "mlp":
        cfg = MLPConfig(h_dim=16, n_layer=2, num_classes=3, pdrop=0.0)

        def mlp_inputs(batch, seed):
            return {"inputs_embeds": _rand((batch, 1, 16), seed)}

        return MLPForClassification(cfg), mlp_inputs
    if model_type == "gru":
        cfg = GRUConfig(h_dim=16, n_layer=2, n_labels=3, pdrop=0.0)

        def gru_inputs(batch, seed):
            return {"inputs_embeds": _rand((batch, 5, 16), seed)}

        return GRUForClassification(cfg), gru_inputs
    raise KeyError(f"no tiny model for {model_type!r}: add one to tests/test_families.py")


# --------------------------------------------------------------------------- references
# component -> (module path from the model root, hook side, part(config) or None,
#               heads(config) or None); "{i}" is the layer.
class PerHead:
    """Reference part: ``index`` of the (H, 3, Dh) per-head layout of a fused QKV output."""

    def __init__(self, index):
        self.index = index


FLAT = "token-flattened"  # reference part: the raw tensor is (B * S, W)


def q_heads(c):
    return c.num_attention_heads


def kv_heads(c):
    return c.num_key_value_heads


def qkv_part(index, width):
    return lambda c: (index * width(c), (index + 1) * width(c))


def attn_refs(L, q, k, v, o, attn, qh=q_heads, kh=q_heads, qkv=None):
    """Attention components; ``qkv``: (path, q part, k part, v part) of a fused projection."""
    refs = {
        "attention_value_output": (o, "input", None, None),
        "head_attention_value_output": (o, "input", None, qh),
        "attention_output": (attn, "output", None, None),
        "attention_input": (attn, "input", None, None),
    }
    for name, path, heads, i in (("query", q, qh, 0), ("key", k, kh, 1), ("value", v, kh, 2)):
        part = None if qkv is None else qkv[1 + i]
        path = path if qkv is None else qkv[0]
        refs[f"{name}_output"] = (path, "output", part, None)
        refs[f"head_{name}_output"] = (path, "output", part, heads)
    return refs


def block_refs(block, mlp_in, mlp_in_side, act, mlp_out):
    return {
        "block_input": (block, "input", None, None),
        "block_output": (block, "output", None, None),
        "mlp_input": (mlp_in, mlp_in_side, None, None),
        "mlp_activation": (act, "output", None, None),
        "mlp_output": (mlp_out, "output", None, None),
    }


def llama_refs(p):
    L = f"{p}.layers.{{i}}"
    a = f"{L}.self_attn"
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act_fn", f"{L}.mlp"),
        **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.o_proj", a, kh=kv_heads),
    }


def bert_refs(p, act):
    L = f"{p}.encoder.layer.{{i}}"
    s = f"{L}.attention.self"
    refs = {
        **block_refs(L, f"{L}.intermediate", "input", f"{L}.intermediate{act}", f"{L}.output"),
        **attn_refs(
            L, f"{s}.query", f"{s}.key", f"{s}.value", f"{L}.attention.output", f"{L}.attention"
        ),
    }
    return refs


def clip_refs(L, qkv=None, o="out_proj"):
    a = f"{L}.self_attn"
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.activation_fn", f"{L}.mlp"),
        **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.{o}", a, qkv=qkv),
    }


def whisper_refs(side):
    L = f"model.{side}.layers.{{i}}"
    a = f"{L}.self_attn"

    def heads(c):
        return getattr(c, f"{side}_attention_heads")

    return {
        **block_refs(L, f"{L}.fc1", "input", f"{L}.activation_fn", f"{L}.fc2"),
        **attn_refs(
            L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj", a, heads, heads
        ),
    }


def phi3_refs():
    L = "model.layers.{i}"

    def hd(c):
        return c.hidden_size // c.num_attention_heads

    q, kv = (lambda c: q_heads(c) * hd(c)), (lambda c: kv_heads(c) * hd(c))
    parts = (
        f"{L}.self_attn.qkv_proj",
        lambda c: (0, q(c)),
        lambda c: (q(c), q(c) + kv(c)),
        lambda c: (q(c) + kv(c), q(c) + 2 * kv(c)),
    )
    ffn = lambda c: c.intermediate_size  # noqa: E731
    a = f"{L}.self_attn"
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.activation_fn", f"{L}.mlp"),
        **attn_refs(L, "", "", "", f"{a}.o_proj", a, kh=kv_heads, qkv=parts),
        "mlp_gate_output": (f"{L}.mlp.gate_up_proj", "output", lambda c: (0, ffn(c)), None),
        "mlp_up_output": (f"{L}.mlp.gate_up_proj", "output", lambda c: (ffn(c), 2 * ffn(c)), None),
    }


def refs_for(model_type):  # noqa: C901  # #14: refactor
    if model_type in LLAMA_LIKE:
        return llama_refs("model")
    if model_type == "mixtral":
        refs = llama_refs("model")
        del refs["mlp_activation"]
        return refs
    if model_type == "phi":
        L = "model.layers.{i}"
        a = f"{L}.self_attn"
        return {
            **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.activation_fn", f"{L}.mlp"),
            **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.dense", a, kh=kv_heads),
        }  # fmt: skip
    if model_type == "phi3":
        return phi3_refs()
    if model_type == "gpt2":
        L = "transformer.h.{i}"
        a = f"{L}.attn"
        d = lambda c: c.n_embd  # noqa: E731
        qkv = (f"{a}.c_attn", qkv_part(0, d), qkv_part(1, d), qkv_part(2, d))
        return {
            **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act", f"{L}.mlp"),
            **attn_refs(L, "", "", "", f"{a}.c_proj", a, qkv=qkv),
            "attention_output": (f"{a}.resid_dropout", "output", None, None),
        }
    if model_type == "gpt_neo":
        L = "transformer.h.{i}"
        a = f"{L}.attn.attention"
        return {
            **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act", f"{L}.mlp"),
            **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj", f"{L}.attn"),
        }  # fmt: skip
    if model_type == "gpt_neox":
        L = "gpt_neox.layers.{i}"
        qkv = (f"{L}.attention.query_key_value", PerHead(0), PerHead(1), PerHead(2))
        return {
            **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act", f"{L}.mlp"),
            **attn_refs(L, "", "", "", f"{L}.attention.dense", f"{L}.attention", qkv=qkv),
        }
    if model_type == "opt":
        L = "model.decoder.layers.{i}"
        a = f"{L}.self_attn"
        mlp = block_refs(L, f"{L}.fc1", "input", f"{L}.activation_fn", f"{L}.fc2")
        return {
            **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj", a),
            **{  # OPT's MLP runs on token-flattened (B * S, W) tensors
                name: (path, side, FLAT if name.startswith("mlp_") else None, None)
                for name, (path, side, _, _) in mlp.items()
            },
        }
    if model_type in ("bert", "roberta"):
        return bert_refs(model_type, ".intermediate_act_fn")
    if model_type == "esm":
        return bert_refs("esm", "")
    if model_type == "mamba":
        L = "backbone.layers.{i}"
        return {
            "block_input": (L, "input", None, None),
            "block_output": (L, "output", None, None),
            "mixer_input": (f"{L}.mixer", "input", None, None),
            "mixer_output": (f"{L}.mixer", "output", None, None),
            "ssm_output": (f"{L}.mixer.out_proj", "input", None, None),
        }
    if model_type == "blip":
        d = lambda c: c.hidden_size  # noqa: E731
        V_L = "vision_model.encoder.layers.{i}"
        qkv = (f"{V_L}.self_attn.qkv", qkv_part(0, d), qkv_part(1, d), qkv_part(2, d))
        vision = clip_refs(V_L, qkv=qkv, o="projection")
        return {
            **bert_refs("text_encoder", ".intermediate_act_fn"),
            **{f"vision.{k}": v for k, v in vision.items()},
            "itm_output": ("itm_head", "output", None, None),
        }
    if model_type == "llava":
        vision = clip_refs("model.vision_tower.encoder.layers.{i}")
        return {
            **llama_refs("model.language_model"),
            **{f"vision.{k}": v for k, v in vision.items()},
        }
    if model_type == "whisper":
        return {
            **whisper_refs("encoder"),
            **{f"decoder.{k}": v for k, v in whisper_refs("decoder").items()},
        }
    if model_type == "mlp":
        return {
            "block_input": ("mlp.h.{i}", "input", None, None),
            "block_output": ("mlp.h.{i}", "output", None, None),
            "mlp_activation": ("mlp.h.{i}.act", "output", None, None),
        }
    if model_type == "gru":
        h = lambda c: c.h_dim  # noqa: E731
        third = {"reset": lambda c: (0, h(c)), "update": lambda c: (h(c), 2 * h(c)),
                 "new": lambda c: (2 * h(c), 3 * h(c))}  # fmt: skip
        return {
            "block_input": ("gru.layer_inputs.{i}", "output", None, None),
            "block_output": ("gru.layer_outputs.{i}", "output", None, None),
            "cell_input": ("gru.cells.{i}", "input", None, None),
            "cell_output": ("gru.cells.{i}", "output", None, None),
            "x2h_output": ("gru.cells.{i}.x2h", "output", None, None),
            "h2h_output": ("gru.cells.{i}.h2h", "output", None, None),
            **{
                f"{gate}_{lin}_output": (f"gru.cells.{{i}}.{lin}", "output", third[gate], None)
                for gate in third
                for lin in ("x2h", "h2h")
            },
            **{
                f"{gate}_gate_{side}": (f"gru.cells.{{i}}.{gate}_act", side, None, None)
                for gate in third
                for side in ("input", "output")
            },
        }
    raise KeyError(model_type)


def sub_config(model, component):
    """The config a component's dims come from (written out here, independently)."""
    c = model.config
    if component.startswith("vision."):
        return c.vision_config
    if c.model_type in ("llava", "blip") and component != "itm_output":
        return c.text_config
    return c


# --------------------------------------------------------------------------- plumbing
def walk(model, path, layer):
    """Plain attribute access: ``a.b.3.c`` -> model.a.b[3].c."""
    obj = model
    for name in path.format(i=layer).split("."):
        obj = obj[int(name)] if name.isdigit() else getattr(obj, name)
    return obj


def out_tensor(out):
    """The model's main output (logits, ITM score, ...)."""
    if isinstance(out, tuple):
        return out[0]
    return out.logits if getattr(out, "logits", None) is not None else out[0]


def ref_view(raw, config, part, heads, batch):
    """The component as a (B, S, D) or (B, S, H, Dh) view of ``raw`` (so writes land in it);
    an interleaved QKV part stays (B, S, H, Dh) also without a head split."""
    if part == FLAT:
        return raw.view(batch, -1, raw.shape[-1])
    if raw.dim() == 2:
        raw = raw.unsqueeze(1)
    if isinstance(part, PerHead):
        return raw.view(*raw.shape[:2], config.num_attention_heads, 3, -1)[..., part.index, :]
    if part is not None:
        start, end = part(config)
        raw = raw[..., start:end]
    if heads is not None:
        raw = raw.unflatten(-1, (heads(config), -1))
    return raw


_CACHE: dict[str, tuple] = {}


def model_for(model_type):
    if model_type not in _CACHE:
        model, inputs = build(model_type)
        _CACHE[model_type] = (model.eval(), inputs)
    return _CACHE[model_type]


def read(model, ref, inputs):
    path, side, _, _ = ref
    store = {}
    module = walk(model, path, LAYER if "{i}" in path else 0)
    handle = hooked(module, side, lambda x: store.setdefault("x", x.detach().clone()))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return store["x"]


def cases():
    """Every registered component that runs once per forward. Per-timestep (recurrent cell)
    components take unit "t" and are checked in tests/test_gru_timesteps.py."""
    for model_type in sorted(FAMILIES):
        for component, spec in sorted(FAMILIES[model_type].components.items()):
            if not spec.per_step:
                yield model_type, component


def layer_of(ref):
    return LAYER if "{i}" in ref[0] else 0


# --------------------------------------------------------------------------- tests
def test_every_registered_component_has_a_reference():
    for model_type in FAMILIES:
        assert sorted(refs_for(model_type)) == sorted(FAMILIES[model_type].components), model_type


@pytest.mark.parametrize("model_type,component", list(cases()))
def test_collect_width_and_heads_match_plain_hook(model_type, component):
    model, make_inputs = model_for(model_type)
    ref = refs_for(model_type)[component]
    config = sub_config(model, component)
    inputs = make_inputs(2, 1)
    view = ref_view(read(model, ref, inputs), config, ref[2], ref[3], batch=2)
    is_head = ref[3] is not None
    pvm = pv.IntervenableModel(
        {"layer": layer_of(ref), "component": component, "unit": "h.pos" if is_head else "pos",
         "intervention_type": pv.CollectIntervention}, model,
    )  # fmt: skip
    (_, got), _ = pvm(inputs)
    expect = view.permute(0, 2, 1, 3) if is_head else view.flatten(2)
    torch.testing.assert_close(got[0], expect, rtol=0, atol=0)
    site = pvm._slots[0].site
    assert site.module is walk(model, ref[0], layer_of(ref))
    assert site.hook == ref[1]
    assert site.dim == expect.shape[-1]
    assert pvm.interventions[pvm.sorted_keys[0]].embed_dim == expect.shape[-1]
    assert site.heads == (ref[3](config) if is_head else None)


def _positions(seq):
    if seq >= 3:
        return [[0, 2], [seq - 1, 1]], [[1, seq - 1], [2, 0]]
    return [[0], [0]], [[0], [0]]


@pytest.mark.parametrize("model_type,component", list(cases()))
def test_vanilla_patch_equals_manual_patch(model_type, component):
    model, make_inputs = model_for(model_type)
    ref = refs_for(model_type)[component]
    path, side, part, heads = ref
    config = sub_config(model, component)
    base, source = make_inputs(2, 2), make_inputs(2, 3)
    src = ref_view(read(model, ref, source), config, part, heads, batch=2)
    spos, bpos = _positions(src.shape[1])
    hsel = [[1], [0]] if heads is not None else None

    def patch(x):
        x = x.clone()
        v = ref_view(x, config, part, heads, batch=2)
        for b in range(2):
            for s_p, b_p in zip(spos[b], bpos[b]):
                if hsel is None:
                    v[b, b_p] = src[b, s_p]
                else:
                    for h in hsel[b]:
                        v[b, b_p, h] = src[b, s_p, h]
        return x

    handle = hooked(walk(model, path, layer_of(ref)), side, patch)
    try:
        with torch.no_grad():
            expected = out_tensor(model(**base))
    finally:
        handle.remove()
    if heads is not None:
        unit, locs = "h.pos", {"sources->base": ([[hsel, spos]], [[hsel, bpos]])}
    else:
        unit, locs = "pos", {"sources->base": ([spos], [bpos])}
    pvm = pv.IntervenableModel(
        {"layer": layer_of(ref), "component": component, "unit": unit}, model
    )
    with torch.no_grad():
        _, out = pvm(base, [source], locs)
    torch.testing.assert_close(out_tensor(out), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "model_type,component,fragment",
    [
        ("mamba", "attention_output", "no attention"),
        ("mamba", "mlp_output", "mixer_output"),
        ("mixtral", "mlp_activation", "fuses the experts"),
        ("mixtral", "expert_output", "only their routed tokens"),
        ("opt", "mixer_output", "mlp_output"),
    ],
)
def test_missing_component_says_so_and_lists_components(model_type, component, fragment):
    model, _ = model_for(model_type)
    with pytest.raises(pv.UnknownComponentError) as err:
        pv.IntervenableModel({"layer": 0, "component": component}, model)
    msg = str(err.value)
    assert f"have no component {component!r}" in msg and fragment in msg
    assert "block_output" in msg  # lists the family's components


def test_blip_model_text_tower_root_candidates():
    """BlipModel names its text tower ``text_model``; the same table finds it."""
    model, _ = model_for("blip")
    blip = T.BlipModel(model.config).eval()
    pvm = pv.IntervenableModel({"layer": 1, "component": "block_output"}, blip)
    assert pvm._slots[0].site.module is blip.text_model.encoder.layer[1]


def test_introspection_lists_resolved_components():
    from pyvene.families.introspect import format_components, list_components

    model, _ = model_for("phi3")
    rows = {r["component"]: r for r in list_components(model, layer=1)}
    assert set(rows) == set(FAMILIES["phi3"].components)
    key = rows["head_key_output"]
    assert key["module"] == "model.layers.1.self_attn.qkv_proj" and key["hook"] == "output"
    assert key["heads"] == 2 and key["dim"] == 8 and key["part"] == (32, 48)
    assert "head_key_output" in format_components(model)


def test_docs_table_lists_every_family():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "docs" / "generate_families_table.py"
    spec = importlib.util.spec_from_file_location("gen_families", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = mod.render()
    for model_type, family in FAMILIES.items():
        assert f"`{model_type}`" in text and f"## {family.name}" in text

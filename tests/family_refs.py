"""Independent references for tests/test_families.py: for every component of every family,
the module path reached by plain attribute access, the hook side, the slice of a fused tensor
and the head split, written out here (not read from pyvene's tables); and the plumbing that
reads a component with a plain torch hook."""

from __future__ import annotations

from functools import partial

from conftest import captured
from family_models import LAYER, LLAMA_LIKE, build

from pyvene.families import FAMILIES


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


def refs_mixtral():
    refs = llama_refs("model")
    del refs["mlp_activation"]
    return refs


def refs_phi():
    L = "model.layers.{i}"
    a = f"{L}.self_attn"
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.activation_fn", f"{L}.mlp"),
        **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.dense", a, kh=kv_heads),
    }  # fmt: skip


def refs_gpt2():
    L = "transformer.h.{i}"
    a = f"{L}.attn"
    d = lambda c: c.n_embd  # noqa: E731
    qkv = (f"{a}.c_attn", qkv_part(0, d), qkv_part(1, d), qkv_part(2, d))
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act", f"{L}.mlp"),
        **attn_refs(L, "", "", "", f"{a}.c_proj", a, qkv=qkv),
        "attention_output": (f"{a}.resid_dropout", "output", None, None),
        "attention_weight": (f"{a}.attn_dropout", "input", None, None),
    }


def refs_gpt_neo():
    L = "transformer.h.{i}"
    a = f"{L}.attn.attention"
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act", f"{L}.mlp"),
        **attn_refs(L, f"{a}.q_proj", f"{a}.k_proj", f"{a}.v_proj", f"{a}.out_proj", f"{L}.attn"),
    }  # fmt: skip


def refs_gpt_neox():
    L = "gpt_neox.layers.{i}"
    qkv = (f"{L}.attention.query_key_value", PerHead(0), PerHead(1), PerHead(2))
    return {
        **block_refs(L, f"{L}.mlp", "input", f"{L}.mlp.act", f"{L}.mlp"),
        **attn_refs(L, "", "", "", f"{L}.attention.dense", f"{L}.attention", qkv=qkv),
    }


def refs_opt():
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


def refs_mamba():
    L = "backbone.layers.{i}"
    return {
        "block_input": (L, "input", None, None),
        "block_output": (L, "output", None, None),
        "mixer_input": (f"{L}.mixer", "input", None, None),
        "mixer_output": (f"{L}.mixer", "output", None, None),
        "ssm_output": (f"{L}.mixer.out_proj", "input", None, None),
    }


def refs_blip():
    d = lambda c: c.hidden_size  # noqa: E731
    V_L = "vision_model.encoder.layers.{i}"
    qkv = (f"{V_L}.self_attn.qkv", qkv_part(0, d), qkv_part(1, d), qkv_part(2, d))
    vision = clip_refs(V_L, qkv=qkv, o="projection")
    return {
        **bert_refs("text_encoder", ".intermediate_act_fn"),
        **{f"vision.{k}": v for k, v in vision.items()},
        "itm_output": ("itm_head", "output", None, None),
    }


def refs_llava():
    vision = clip_refs("model.vision_tower.encoder.layers.{i}")
    return {
        **llama_refs("model.language_model"),
        **{f"vision.{k}": v for k, v in vision.items()},
    }


def refs_whisper():
    return {
        **whisper_refs("encoder"),
        **{f"decoder.{k}": v for k, v in whisper_refs("decoder").items()},
    }


def refs_mlp():
    return {
        "block_input": ("mlp.h.{i}", "input", None, None),
        "block_output": ("mlp.h.{i}", "output", None, None),
        "mlp_activation": ("mlp.h.{i}.act", "output", None, None),
    }


def refs_gru():
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


REFS = {
    **{model_type: partial(llama_refs, "model") for model_type in LLAMA_LIKE},
    "phi3": phi3_refs,
    "bert": partial(bert_refs, "bert", ".intermediate_act_fn"),
    "roberta": partial(bert_refs, "roberta", ".intermediate_act_fn"),
    "esm": partial(bert_refs, "esm", ""),
    "mixtral": refs_mixtral,
    "phi": refs_phi,
    "gpt2": refs_gpt2,
    "gpt_neo": refs_gpt_neo,
    "gpt_neox": refs_gpt_neox,
    "opt": refs_opt,
    "mamba": refs_mamba,
    "blip": refs_blip,
    "llava": refs_llava,
    "whisper": refs_whisper,
    "mlp": refs_mlp,
    "gru": refs_gru,
}


def refs_for(model_type):
    """component -> reference of every component of ``model_type``'s table."""
    return REFS[model_type]()


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


MODEL_CACHE: dict[str, tuple] = {}


def model_for(model_type):
    if model_type not in MODEL_CACHE:
        model, inputs = build(model_type)
        MODEL_CACHE[model_type] = (model.eval(), inputs)
    return MODEL_CACHE[model_type]


def read(model, ref, inputs):
    path, side, _, _ = ref
    return captured(model, walk(model, path, LAYER if "{i}" in path else 0), side, inputs)


def cases():
    """Every registered component that runs once per forward. Per-timestep (recurrent cell)
    components take unit "t" and are checked in tests/test_gru_timesteps.py; GPT-2's
    ``attention_weight`` (a 4-D tensor on a module HF calls only while pyvene hooks it) in
    tests/test_attention_weight.py."""
    for model_type in sorted(FAMILIES):
        for component, spec in sorted(FAMILIES[model_type].components.items()):
            if not spec.per_step and (model_type, component) != ("gpt2", "attention_weight"):
                yield model_type, component


def layer_of(ref):
    return LAYER if "{i}" in ref[0] else 0

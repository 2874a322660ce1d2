"""The site resolver hook (families.register_site_resolver): a registered resolver is asked
before the family tables; the core never imports the original-API compat package
(pyvene.models), which registers the pv.type_to_* registries' resolver when imported."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import captured, ids, make_gpt2

import pyvene as pv
from pyvene.families import HookSite, register_site_resolver


def test_registered_site_resolver_is_asked_before_the_tables():
    """A resolver registered through families.register_site_resolver names a component the
    GPT-2 table lacks; collecting it equals a plain hook on the module it names."""
    model = make_gpt2()

    def resolver(m, layer, component):
        if component != "resolver_test_mlp" or m is not model:
            return None
        return HookSite(m.transformer.h[layer].mlp, f"transformer.h.{layer}.mlp", "output",
                        component, layer, m.config.n_embd)  # fmt: skip

    assert register_site_resolver(resolver) is resolver
    register_site_resolver(resolver)  # twice: still asked once
    inputs = ids(2, 5, 7)
    expect = captured(model, model.transformer.h[2].mlp, "output", inputs)
    pvm = pv.IntervenableModel(
        {"layer": 2, "component": "resolver_test_mlp", "intervention_type": pv.CollectIntervention},
        model,
    )
    (_, collected), _ = pvm(inputs)
    torch.testing.assert_close(collected[0], expect, rtol=0, atol=0)
    with pytest.raises(pv.UnknownComponentError, match="resolver_test_mlp"):
        pv.IntervenableModel({"layer": 2, "component": "resolver_test_mlp"}, make_gpt2(1))


def test_the_core_never_imports_the_compat_package():
    """Importing the core modules and running an intervened call leave pyvene.models
    unimported; reading pv.type_to_module_mapping imports it and registers its resolver."""
    code = (
        "import sys, torch, pyvene as pv, pyvene.analysis, pyvene.serialization\n"
        "import pyvene.generation, pyvene.cli, pyvene.recurrent\n"
        "from transformers import GPT2Config, GPT2LMHeadModel\n"
        "m = GPT2LMHeadModel(GPT2Config(n_embd=8, n_head=2, n_layer=2, vocab_size=20)).eval()\n"
        "pvm = pv.IntervenableModel({'layer': 1, 'component': 'mlp_output'}, m)\n"
        "pvm({'input_ids': torch.tensor([[1, 2]])}, [{'input_ids': torch.tensor([[3, 4]])}])\n"
        "assert not [k for k in sys.modules if k.startswith('pyvene.models')], 'core'\n"
        "pv.type_to_module_mapping[type(m)] = {'mlp_output': ('transformer.h[%s].attn',\n"
        "                                                     'register_forward_hook')}\n"
        "from pyvene.families import resolve_site\n"
        "assert resolve_site(m, 1, 'mlp_output').module is m.transformer.h[1].attn\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr

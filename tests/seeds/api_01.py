# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 1, "IntervenableModel / Basic Usage".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

import pyvene as pv
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR)  # changed: was "gpt2"
config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=5,
            component="block_output",
            intervention_type=pv.VanillaIntervention,
        )
    ]
)
intervenable = pv.IntervenableModel(config, model)

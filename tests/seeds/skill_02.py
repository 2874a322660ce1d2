# Seed: 002_20ffd854460a3f2e.txt (SKILL.md "pyvene: Causal Interventions for Neural Networks"; the
# same code is in 000_153aae5a30df61e8.txt), block 2, "Core Concepts / IntervenableModel".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

import pyvene as pv
from transformers import AutoModelForCausalLM, AutoTokenizer

# Load base model
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR)  # changed: was "gpt2"
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)  # changed: was "gpt2"

# Define intervention configuration
config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=8,
            component="block_output",
            intervention_type=pv.VanillaIntervention,
        )
    ]
)

# Create intervenable model
intervenable = pv.IntervenableModel(config, model)

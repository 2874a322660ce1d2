# Seed: 003_fd4e7e04cb163857.txt ("pyvene Tutorials", references/tutorials.md), python block 5, "Tutorial 5: Collecting Activations".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

import pyvene as pv
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR)  # changed: was "gpt2"
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)  # changed: was "gpt2"
# 1. Config with CollectIntervention
config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=5,
            component="block_output",
            intervention_type=pv.CollectIntervention,
        ),
        pv.RepresentationConfig(
            layer=10,
            component="attention_output",
            intervention_type=pv.CollectIntervention,
        ),
    ]
)
intervenable = pv.IntervenableModel(config, model)
# 2. Run and collect
inputs = tokenizer("Hello world", return_tensors="pt")
(_, collected), _ = intervenable(base=inputs)  # changed: SPEC A, with a CollectIntervention the result is ((original, collected), intervened); was "_, collected ="
# 3. Access collected activations
layer5_output = collected[0]
layer10_attn = collected[1]
print(f"Layer 5 block output shape: {layer5_output.shape}")
print(f"Layer 10 attention output shape: {layer10_attn.shape}")

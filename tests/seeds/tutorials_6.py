# Seed: 003_fd4e7e04cb163857.txt ("pyvene Tutorials", references/tutorials.md), python block 6, "Tutorial 6: Generation with Interventions".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.
# The seed's generate() call passes no source for the AdditionIntervention, so nothing is
# added (the steering direction is computed but never used, as its own comment admits).

import pyvene as pv
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(MODEL_DIR)  # changed: was "gpt2"
tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)  # changed: was "gpt2"
tokenizer.pad_token = tokenizer.eos_token
# 1. Get steering direction (happy vs sad)
happy_inputs = tokenizer("I am very happy and", return_tensors="pt")
sad_inputs = tokenizer("I am very sad and", return_tensors="pt")
# Collect activations
config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=6,
            component="mlp_output",
            intervention_type=pv.CollectIntervention,
        )
    ]
)
collector = pv.IntervenableModel(config, model)
(_, happy_acts), _ = collector(base=happy_inputs)  # changed: SPEC A Collect idiom; was "_, happy_acts ="
(_, sad_acts), _ = collector(base=sad_inputs)  # changed: SPEC A Collect idiom; was "_, sad_acts ="
steering_direction = happy_acts[0].mean(dim=1) - sad_acts[0].mean(dim=1)
# 2. Config for steering during generation
config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=6,
            component="mlp_output",
            intervention_type=pv.AdditionIntervention,
        )
    ]
)
intervenable = pv.IntervenableModel(config, model)
# 3. Generate with steering
prompt = "Today I feel"
inputs = tokenizer(prompt, return_tensors="pt")
# Create source with steering direction
# (This is simplified - actual implementation varies)
_, output = intervenable.generate(  # changed: SPEC A, generate returns (original_or_None, ids); was "output ="
    inputs,
    max_new_tokens=20,
    do_sample=True,
    temperature=0.7,
)
print(tokenizer.decode(output[0]))

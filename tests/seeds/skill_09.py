# Seed: 002_20ffd854460a3f2e.txt (SKILL.md "pyvene: Causal Interventions for Neural Networks"; the
# same code is in 000_153aae5a30df61e8.txt), block 9, "Saving and Sharing Interventions".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.
# As written this block stops at its last statement: save_intervention() writes trainable
# weights to a local folder (SPEC A keeps the original's meaning), which load() rejects with a
# hint. skill_09_corrected.py is the form SPEC A documents. The test runs it in a temporary
# working directory; intervenable and model come from the test.

# Save locally
intervenable.save("./my_intervention")

# Load from local
intervenable = pv.IntervenableModel.load(
    "./my_intervention",
    model=model,
)

# Share on HuggingFace
intervenable.save_intervention("username/my-intervention")

# Load from HuggingFace
intervenable = pv.IntervenableModel.load(
    "username/my-intervention",
    model=model,
)

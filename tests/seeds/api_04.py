# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 4, "Saving and Loading".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.
# As written this block stops at its last statement: save_intervention() writes trainable
# weights to a local folder (SPEC A keeps the original's meaning), which load() rejects with a
# hint. api_04_corrected.py is the form SPEC A documents. The test runs it in a temporary
# working directory; intervenable and model come from the test.

# Save locally
intervenable.save("./my_intervention")
# Load
intervenable = pv.IntervenableModel.load("./my_intervention", model=model)
# Save to HuggingFace
intervenable.save_intervention("username/my-intervention")
# Load from HuggingFace
intervenable = pv.IntervenableModel.load(
    "username/my-intervention",
    model=model
)

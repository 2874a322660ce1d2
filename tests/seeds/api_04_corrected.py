# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 4, "Saving and Loading",
# in the corrected form SPEC A documents: sharing through the hub is push_to_hub(repo_id)
# (or save(dir, save_to_hf_hub=True, hf_repo_name=...)); save_intervention() writes trainable
# weights to a local folder only. The test serves the hub from a local stand-in.
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

# Save locally
intervenable.save("./my_intervention")
# Load
intervenable = pv.IntervenableModel.load("./my_intervention", model=model)
# Save to HuggingFace
intervenable.push_to_hub("username/my-intervention")  # changed: SPEC A, was intervenable.save_intervention(...)
# Load from HuggingFace
intervenable = pv.IntervenableModel.load(
    "username/my-intervention",
    model=model
)

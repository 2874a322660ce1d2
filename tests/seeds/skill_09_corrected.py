# Seed: 002_20ffd854460a3f2e.txt (SKILL.md "pyvene: Causal Interventions for Neural Networks"; the
# same code is in 000_153aae5a30df61e8.txt), block 9, "Saving and Sharing Interventions",
# in the corrected form SPEC A documents: sharing through the hub is push_to_hub(repo_id)
# (or save(dir, save_to_hf_hub=True, hf_repo_name=...)); save_intervention() writes trainable
# weights to a local folder only. The test serves the hub from a local stand-in.
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

# Save locally
intervenable.save("./my_intervention")

# Load from local
intervenable = pv.IntervenableModel.load(
    "./my_intervention",
    model=model,
)

# Share on HuggingFace
intervenable.push_to_hub("username/my-intervention")  # changed: SPEC A, was intervenable.save_intervention(...)

# Load from HuggingFace
intervenable = pv.IntervenableModel.load(
    "username/my-intervention",
    model=model,
)

# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 5, "Getting Trainable Parameters".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

# For trainable interventions
params = intervenable.get_trainable_parameters()
optimizer = torch.optim.Adam(params, lr=1e-4)

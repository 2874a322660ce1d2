# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 19, "Unit Locations / Examples".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

# Single position
unit_locations = {"sources->base": ([[[5]]], [[[5]]])}
# Multiple positions
unit_locations = {"sources->base": ([[[3, 5, 7]]], [[[3, 5, 7]]])}
# Different source and base positions
unit_locations = {"sources->base": ([[[5]]], [[[10]]])}

# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 18, "Unit Locations / Format".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

unit_locations = {
    "sources->base": (source_locations, base_locations)
}

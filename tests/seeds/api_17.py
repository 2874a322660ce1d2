# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 17, "SigmoidMaskIntervention".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

pv.RepresentationConfig(
    intervention_type=pv.SigmoidMaskIntervention,
    layer=5, component="block_output",  # changed: the "..." placeholder filled
)

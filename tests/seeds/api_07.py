# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 7, "Multiple Interventions".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(layer=3, component="block_output", intervention_type=pv.CollectIntervention),  # changed: the "..." placeholder filled
        pv.RepresentationConfig(layer=5, component="mlp_output", intervention_type=pv.CollectIntervention),  # changed: the "..." placeholder filled
        pv.RepresentationConfig(layer=7, component="attention_output", intervention_type=pv.CollectIntervention),  # changed: the "..." placeholder filled
    ]
)

# Seed: 001_c05dd76eebc64155.txt ("pyvene API Reference", references/api.md), python block 13, "CollectIntervention".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=5,
            component="block_output",
            intervention_type=pv.CollectIntervention,
        )
    ]
)
intervenable = pv.IntervenableModel(config, model)
(_, collected), _ = intervenable(base=inputs)  # changed: SPEC A, with a CollectIntervention the result is ((original, collected), intervened); was "_, collected ="
# collected contains the activations

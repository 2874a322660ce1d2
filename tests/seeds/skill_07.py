# Seed: 002_20ffd854460a3f2e.txt (SKILL.md "pyvene: Causal Interventions for Neural Networks"; the
# same code is in 000_153aae5a30df61e8.txt), block 7, "DAS (Distributed Alignment Search)".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

# Low-rank rotation finds interpretable subspaces
config = pv.IntervenableConfig(
    representations=[
        pv.RepresentationConfig(
            layer=8,
            component="block_output",
            intervention_type=pv.LowRankRotatedSpaceIntervention,
            low_rank_dimension=1,  # Find 1D causal direction
        )
    ]
)

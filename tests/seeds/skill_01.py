# Seed: 002_20ffd854460a3f2e.txt (SKILL.md "pyvene: Causal Interventions for Neural Networks"; the
# same code is in 000_153aae5a30df61e8.txt), block 1, "Installation / Standard import".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

import pyvene as pv

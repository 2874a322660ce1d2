# Seed: 002_20ffd854460a3f2e.txt (SKILL.md "pyvene: Causal Interventions for Neural Networks"; the
# same code is in 000_153aae5a30df61e8.txt), block 3, "Component Targets".
# Copied from the seed with its indentation restored (the page lost it); only lines marked
# "# changed:" differ. Names the block uses without defining come from tests/seed_docs/.

# Available components to intervene on
components = [
    "block_input",  # Input to transformer block
    "block_output",  # Output of transformer block
    "mlp_input",  # Input to MLP
    "mlp_output",  # Output of MLP
    "mlp_activation",  # MLP hidden activations
    "attention_input",  # Input to attention
    "attention_output",  # Output of attention
    "attention_value_output",  # Attention value vectors
    "query_output",  # Query vectors
    "key_output",  # Key vectors
    "value_output",  # Value vectors
    "head_attention_value_output",  # Per-head values
]

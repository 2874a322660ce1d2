"""The original's per-architecture import path (``pyvene.models.gpt_neox``)."""

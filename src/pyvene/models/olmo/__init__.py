"""The original's per-architecture import path (``pyvene.models.olmo``)."""

"""The original's import path of the swap primitive and the intervention output type."""

from ..interventions.base import InterventionOutput, _do_intervention_by_swap

__all__ = ["InterventionOutput", "_do_intervention_by_swap"]

"""The original's import path of the swap primitive and the intervention output type."""

from ..interventions.base import InterventionOutput
from ..interventions.swapping import do_intervention_by_swap

_do_intervention_by_swap = do_intervention_by_swap  # the original's name

__all__ = ["InterventionOutput", "_do_intervention_by_swap"]

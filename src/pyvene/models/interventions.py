"""The original's import path of the intervention classes (``pyvene.models.interventions``)."""

from ..interventions import *  # noqa: F403
from ..interventions import __all__ as __all__

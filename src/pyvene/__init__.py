"""pyvene: declarative causal interventions on PyTorch models.

``import pyvene as pv``; wrap a model with ``pv.IntervenableModel(config, model)`` and call it
with a base input, sources and ``unit_locations``. See README.md.
"""

from .causal_datasets import (
    hierarchical_equality_causal_model as hierarchical_equality_causal_model,
)
from .causal_model import CausalModel as CausalModel
from .config import IntervenableConfig as IntervenableConfig
from .config import RepresentationConfig as RepresentationConfig
from .errors import ConfigError as ConfigError
from .errors import DimensionMismatchError as DimensionMismatchError
from .errors import LayerOutOfRangeError as LayerOutOfRangeError
from .errors import LocationError as LocationError
from .errors import PyveneError as PyveneError
from .errors import SerializationError as SerializationError
from .errors import UnknownComponentError as UnknownComponentError
from .families import FAMILIES as FAMILIES
from .families import components_of as components_of
from .families import register_family as register_family
from .intervenable import IntervenableModel as IntervenableModel
from .intervenable import IntervenableModelOutput as IntervenableModelOutput
from .interventions import *  # noqa: F403
from .locations import GET_LOC as GET_LOC
from .zoo import create_gpt2 as create_gpt2
from .zoo import create_gpt2_lm as create_gpt2_lm
from .zoo import create_llama as create_llama
from .zoo import load_smollm2 as load_smollm2

__version__ = "0.2.0"

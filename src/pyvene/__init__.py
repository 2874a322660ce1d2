"""pyvene: declarative causal interventions on PyTorch models.

``import pyvene as pv``; wrap a model with ``pv.IntervenableModel(config, model)`` and call it
with a base input, sources and ``unit_locations``. See README.md.

The original pyvene's top-level names (SPEC B §1.1) are here too: ``type_to_module_mapping``
and ``type_to_dimension_mapping``, the ``basic_utils`` helpers, the model factories and the
bundled MLP / GRU models; ``pv.models`` holds its ``pyvene.models.*`` import paths.
"""

from . import models as models
from .causal_datasets import (
    hierarchical_equality_causal_model as hierarchical_equality_causal_model,
)
from .causal_model import CausalModel as CausalModel
from .config import IntervenableConfig as IntervenableConfig
from .config import RepresentationConfig as RepresentationConfig
from .distributed import distributed_model as distributed_model
from .errors import ConfigError as ConfigError
from .errors import DeviceError as DeviceError
from .errors import DimensionMismatchError as DimensionMismatchError
from .errors import DistributedError as DistributedError
from .errors import LayerOutOfRangeError as LayerOutOfRangeError
from .errors import LocationError as LocationError
from .errors import PyveneError as PyveneError
from .errors import SerializationError as SerializationError
from .errors import UnknownComponentError as UnknownComponentError
from .families import FAMILIES as FAMILIES
from .families import components_of as components_of
from .families import register_family as register_family
from .families.introspect import format_components as format_components
from .families.introspect import list_components as list_components
from .families.legacy_mapping import type_to_dimension_mapping as type_to_dimension_mapping
from .families.legacy_mapping import type_to_module_mapping as type_to_module_mapping
from .intervenable import IntervenableModel as IntervenableModel
from .intervenable import IntervenableModelOutput as IntervenableModelOutput
from .interventions import *  # noqa: F403
from .interventions import _do_intervention_by_swap as _do_intervention_by_swap
from .locations import GET_LOC as GET_LOC
from .models import GRUConfig as GRUConfig
from .models import GRUForClassification as GRUForClassification
from .models import GRULMHeadModel as GRULMHeadModel
from .models import GRUModel as GRUModel
from .models import MLPConfig as MLPConfig
from .models import MLPForClassification as MLPForClassification
from .models import MLPModel as MLPModel
from .models import create_gru as create_gru
from .models import create_gru_classifier as create_gru_classifier
from .models import create_gru_lm as create_gru_lm
from .models import create_mlp_classifier as create_mlp_classifier
from .models.basic_utils import *  # noqa: F403
from .models.hf_factories import create_backpack_gpt2 as create_backpack_gpt2
from .models.hf_factories import create_blip as create_blip
from .models.hf_factories import create_blip_itm as create_blip_itm
from .models.hf_factories import create_gpt_neo as create_gpt_neo
from .models.hf_factories import create_gpt_neox as create_gpt_neox
from .models.hf_factories import create_gpt_oss as create_gpt_oss
from .models.hf_factories import create_llava as create_llava
from .models.hf_factories import create_olmo as create_olmo
from .models.intervenable_base import IntervenableNdifModel as IntervenableNdifModel
from .models.intervenable_base import build_intervenable_model as build_intervenable_model
from .zoo import create_gpt2 as create_gpt2
from .zoo import create_gpt2_lm as create_gpt2_lm
from .zoo import create_llama as create_llama
from .zoo import load_smollm2 as load_smollm2

__version__ = "0.2.0"

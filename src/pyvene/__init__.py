"""pyvene: declarative causal interventions on PyTorch models.

``import pyvene as pv``; wrap a model with ``pv.IntervenableModel(config, model)`` and call it
with a base input, sources and ``unit_locations``. See README.md and the docs site.

The original pyvene's top-level names (SPEC B §1.1) are here too: ``type_to_module_mapping``
and ``type_to_dimension_mapping``, the ``basic_utils`` helpers, the model factories and the
bundled MLP / GRU models; ``pv.models`` holds its ``pyvene.models.*`` import paths.

Start-up: every name below is imported on first access (PEP 562 ``__getattr__``), so
``import pyvene`` (and ``pyvene --help``) costs almost nothing, and using the core
(``pv.IntervenableModel``) imports torch but never transformers or matplotlib; the model
factories, ``pv.models`` and the ``ModelOutput`` result classes bring transformers in when
used. ``from pyvene import X`` and ``from pyvene import *`` work as with eager imports.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# submodule (relative to pyvene) -> the public names it provides at top level
# fmt: off
_EXPORTS: dict[str, tuple[str, ...]] = {
    "activation_cache": ("ActivationCache", "collect",),
    "causal_datasets": ("hierarchical_equality_causal_model",),
    "causal_model": ("CausalModel",),
    "config": ("IntervenableConfig", "RepresentationConfig",),
    "distributed": ("distributed_model",),
    "errors": ("ConfigError", "DeviceError", "DimensionMismatchError", "DistributedError",
        "LayerOutOfRangeError", "LocationError", "PyveneError", "SerializationError", "UnknownComponentError",),
    "families": ("FAMILIES", "components_of", "register_family",),
    "families.introspect": ("format_components", "list_components",),
    "intervenable": ("IntervenableModel",),
    "interventions": ("AdditionIntervention", "AutoencoderIntervention", "AutoencoderLayer",
        "BasisAgnosticIntervention", "BoundlessRotatedSpaceIntervention", "CollectIntervention",
        "ConstantSourceIntervention", "DistributedRepresentationIntervention", "Intervention",
        "JumpReLUAutoencoderIntervention", "LambdaIntervention", "LoRAIntervention",
        "LocalistRepresentationIntervention", "LowRankRotatedSpaceIntervention",
        "NoiseIntervention", "PCARotatedSpaceIntervention", "RotateLayer",
        "RotatedSpaceIntervention", "SharedWeightsTrainableIntervention",
        "SigmoidMaskIntervention", "SigmoidMaskRotatedSpaceIntervention", "SkipIntervention",
        "SourcelessIntervention", "SubtractionIntervention", "TrainableIntervention",
        "VanillaIntervention", "ZeroIntervention",
        "embedding_noise_level", "get_intervention_class", "register", "registered_interventions",),
    "locations": ("GET_LOC",),
    "models": ("GRUConfig", "GRUForClassification", "GRULMHeadModel", "GRUModel", "MLPConfig",
        "MLPForClassification", "MLPModel", "create_gru", "create_gru_classifier", "create_gru_lm",
        "create_mlp_classifier",),
    "models.basic_utils": ("closeness_to_permutation_loss", "count_parameters", "create_directory",
        "embed_to_distrib", "format_token", "get_batch_size", "get_list_depth",
        "get_type_from_string", "harmonic_sigmoid_boundary", "random_permutation_matrix",
        "set_seed", "sigmoid_boundary", "top_vals",),
    "models.legacy_registry": ("type_to_dimension_mapping", "type_to_module_mapping",),
    "models.hf_factories": ("create_backpack_gpt2", "create_blip", "create_blip_itm",
        "create_gpt_neo", "create_gpt_neox", "create_gpt_oss", "create_llava", "create_olmo",),
    "models.intervenable_base": ("IntervenableNdifModel", "build_intervenable_model",),
    "outputs": ("IntervenableModelOutput", "InterventionOutput",),
    "zoo": ("create_gpt2", "create_gpt2_lm", "create_llama", "load_smollm2",),
}
# fmt: on

if TYPE_CHECKING:  # the same names, for type checkers and IDEs (a test keeps both in step)
    from . import models as models
    from .activation_cache import ActivationCache as ActivationCache
    from .activation_cache import collect as collect
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
    from .intervenable import IntervenableModel as IntervenableModel
    from .interventions import AdditionIntervention as AdditionIntervention
    from .interventions import AutoencoderIntervention as AutoencoderIntervention
    from .interventions import AutoencoderLayer as AutoencoderLayer
    from .interventions import BasisAgnosticIntervention as BasisAgnosticIntervention
    from .interventions import (
        BoundlessRotatedSpaceIntervention as BoundlessRotatedSpaceIntervention,
    )
    from .interventions import CollectIntervention as CollectIntervention
    from .interventions import ConstantSourceIntervention as ConstantSourceIntervention
    from .interventions import (
        DistributedRepresentationIntervention as DistributedRepresentationIntervention,
    )
    from .interventions import Intervention as Intervention
    from .interventions import JumpReLUAutoencoderIntervention as JumpReLUAutoencoderIntervention
    from .interventions import LambdaIntervention as LambdaIntervention
    from .interventions import (
        LocalistRepresentationIntervention as LocalistRepresentationIntervention,
    )
    from .interventions import LoRAIntervention as LoRAIntervention
    from .interventions import LowRankRotatedSpaceIntervention as LowRankRotatedSpaceIntervention
    from .interventions import NoiseIntervention as NoiseIntervention
    from .interventions import PCARotatedSpaceIntervention as PCARotatedSpaceIntervention
    from .interventions import RotatedSpaceIntervention as RotatedSpaceIntervention
    from .interventions import RotateLayer as RotateLayer
    from .interventions import (
        SharedWeightsTrainableIntervention as SharedWeightsTrainableIntervention,
    )
    from .interventions import SigmoidMaskIntervention as SigmoidMaskIntervention
    from .interventions import (
        SigmoidMaskRotatedSpaceIntervention as SigmoidMaskRotatedSpaceIntervention,
    )
    from .interventions import SkipIntervention as SkipIntervention
    from .interventions import SourcelessIntervention as SourcelessIntervention
    from .interventions import SubtractionIntervention as SubtractionIntervention
    from .interventions import TrainableIntervention as TrainableIntervention
    from .interventions import VanillaIntervention as VanillaIntervention
    from .interventions import ZeroIntervention as ZeroIntervention
    from .interventions import embedding_noise_level as embedding_noise_level
    from .interventions import get_intervention_class as get_intervention_class
    from .interventions import register as register
    from .interventions import registered_interventions as registered_interventions
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
    from .models.basic_utils import closeness_to_permutation_loss as closeness_to_permutation_loss
    from .models.basic_utils import count_parameters as count_parameters
    from .models.basic_utils import create_directory as create_directory
    from .models.basic_utils import embed_to_distrib as embed_to_distrib
    from .models.basic_utils import format_token as format_token
    from .models.basic_utils import get_batch_size as get_batch_size
    from .models.basic_utils import get_list_depth as get_list_depth
    from .models.basic_utils import get_type_from_string as get_type_from_string
    from .models.basic_utils import harmonic_sigmoid_boundary as harmonic_sigmoid_boundary
    from .models.basic_utils import random_permutation_matrix as random_permutation_matrix
    from .models.basic_utils import set_seed as set_seed
    from .models.basic_utils import sigmoid_boundary as sigmoid_boundary
    from .models.basic_utils import top_vals as top_vals
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
    from .models.legacy_registry import type_to_dimension_mapping as type_to_dimension_mapping
    from .models.legacy_registry import type_to_module_mapping as type_to_module_mapping
    from .outputs import IntervenableModelOutput as IntervenableModelOutput
    from .outputs import InterventionOutput as InterventionOutput
    from .zoo import create_gpt2 as create_gpt2
    from .zoo import create_gpt2_lm as create_gpt2_lm
    from .zoo import create_llama as create_llama
    from .zoo import load_smollm2 as load_smollm2

_ORIGIN = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_ORIGIN, "models"])


# the original API's private names that clients import: name -> (submodule, public name)
_ORIGINAL_ALIASES = {
    "_do_intervention_by_swap": ("interventions.swapping", "do_intervention_by_swap")
}


def __getattr__(name: str) -> Any:
    """Import a public name (or a submodule such as ``pv.analysis``) on first access."""
    if name in _ORIGIN:
        value = getattr(importlib.import_module(f".{_ORIGIN[name]}", __name__), name)
    elif name in _ORIGINAL_ALIASES:
        module, public = _ORIGINAL_ALIASES[name]
        value = getattr(importlib.import_module(f".{module}", __name__), public)
    elif not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later accesses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

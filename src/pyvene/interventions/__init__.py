"""Intervention classes: the contract (base), the name registry (registry), the swap primitive
(swapping), parameter-free ones (basic), rotations / DAS (rotation), masks, autoencoders and
LoRA."""

from typing import Any

from .autoencoder import AutoencoderIntervention as AutoencoderIntervention
from .autoencoder import AutoencoderLayer as AutoencoderLayer
from .autoencoder import (
    JumpReLUAutoencoderIntervention as JumpReLUAutoencoderIntervention,
)
from .base import (
    BasisAgnosticIntervention as BasisAgnosticIntervention,
)
from .base import (
    ConstantSourceIntervention as ConstantSourceIntervention,
)
from .base import (
    DistributedRepresentationIntervention as DistributedRepresentationIntervention,
)
from .base import Intervention as Intervention
from .base import (
    LocalistRepresentationIntervention as LocalistRepresentationIntervention,
)
from .base import (
    SharedWeightsTrainableIntervention as SharedWeightsTrainableIntervention,
)
from .base import SourcelessIntervention as SourcelessIntervention
from .base import TrainableIntervention as TrainableIntervention
from .basic import AdditionIntervention as AdditionIntervention
from .basic import CollectIntervention as CollectIntervention
from .basic import LambdaIntervention as LambdaIntervention
from .basic import NoiseIntervention as NoiseIntervention
from .basic import SkipIntervention as SkipIntervention
from .basic import SubtractionIntervention as SubtractionIntervention
from .basic import VanillaIntervention as VanillaIntervention
from .basic import ZeroIntervention as ZeroIntervention
from .basic import embedding_noise_level as embedding_noise_level
from .lora import LoRAIntervention as LoRAIntervention
from .masks import SigmoidMaskIntervention as SigmoidMaskIntervention
from .registry import get_intervention_class as get_intervention_class
from .registry import register as register
from .registry import registered_interventions as registered_interventions
from .rotation import (
    BoundlessRotatedSpaceIntervention as BoundlessRotatedSpaceIntervention,
)
from .rotation import (
    LowRankRotatedSpaceIntervention as LowRankRotatedSpaceIntervention,
)
from .rotation import PCARotatedSpaceIntervention as PCARotatedSpaceIntervention
from .rotation import RotatedSpaceIntervention as RotatedSpaceIntervention
from .rotation import RotateLayer as RotateLayer
from .rotation import (
    SigmoidMaskRotatedSpaceIntervention as SigmoidMaskRotatedSpaceIntervention,
)
from .swapping import do_intervention_by_swap as _do_intervention_by_swap


def __getattr__(name: str) -> Any:
    # InterventionOutput subclasses transformers' ModelOutput: imported on first use
    if name == "InterventionOutput":
        from ..outputs import InterventionOutput

        return InterventionOutput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BasisAgnosticIntervention",
    "ConstantSourceIntervention",
    "DistributedRepresentationIntervention",
    "Intervention",
    "InterventionOutput",
    "LocalistRepresentationIntervention",
    "SharedWeightsTrainableIntervention",
    "SourcelessIntervention",
    "TrainableIntervention",
    "_do_intervention_by_swap",
    "get_intervention_class",
    "register",
    "registered_interventions",
    "AdditionIntervention",
    "CollectIntervention",
    "LambdaIntervention",
    "NoiseIntervention",
    "SkipIntervention",
    "SubtractionIntervention",
    "VanillaIntervention",
    "ZeroIntervention",
    "embedding_noise_level",
    "AutoencoderIntervention",
    "AutoencoderLayer",
    "JumpReLUAutoencoderIntervention",
    "LoRAIntervention",
    "SigmoidMaskIntervention",
    "BoundlessRotatedSpaceIntervention",
    "LowRankRotatedSpaceIntervention",
    "PCARotatedSpaceIntervention",
    "RotatedSpaceIntervention",
    "RotateLayer",
    "SigmoidMaskRotatedSpaceIntervention",
]

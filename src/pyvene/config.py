"""Configuration objects: RepresentationConfig (what to intervene on) and IntervenableConfig
(a list of them, the intervention types and the mode). Both round-trip through JSON; tensors
and classes are replaced by placeholders in the JSON view and restored by the saver."""

from __future__ import annotations

import inspect
import json
from collections import namedtuple
from collections.abc import Iterable
from functools import cache
from typing import Any

from transformers.configuration_utils import PretrainedConfig

from .errors import ConfigError, choices_message, closest
from .interventions.base import get_intervention_class
from .interventions.basic import VanillaIntervention

# the 14 RepresentationConfig fields, in the original's order
FIELDS = (
    "layer",
    "component",
    "unit",
    "max_number_of_units",
    "low_rank_dimension",
    "intervention_type",
    "intervention",
    "subspace_partition",
    "group_key",
    "intervention_link_key",
    "moe_key",
    "source_representation",
    "hidden_source_representation",
    "latent_dim",
)
_DEFAULTS = (0, "block_output", "pos", 1) + (None,) * 10
VALID_UNITS = ("pos", "h", "h.pos", "t")
VALID_MODES = ("parallel", "serial")

_Base = namedtuple("RepresentationConfig", FIELDS, defaults=_DEFAULTS)


class RepresentationConfig(_Base):
    """Which tensor to touch: (layer, component, unit) plus how many units, rank, partition,
    grouping and an optional constant source. Field order and defaults are the original's,
    so ``RepresentationConfig(0, "block_output", "pos", 1)`` works positionally."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> RepresentationConfig:
        self = super().__new__(cls, *args, **kwargs)
        if not isinstance(self.component, str) or not self.component:
            raise ConfigError(f"component must be a non-empty string, got {self.component!r}")
        if not isinstance(self.unit, str) or not self.unit:
            raise ConfigError(f"unit must be a string such as {VALID_UNITS}, got {self.unit!r}")
        if not isinstance(self.max_number_of_units, int) or self.max_number_of_units < 1:
            raise ConfigError(
                f"max_number_of_units must be a positive int, got {self.max_number_of_units!r}"
            )
        if self.moe_key is not None:
            raise ConfigError(
                f"moe_key={self.moe_key!r}: the original formats it into module paths with two "
                "'%s' placeholders, and no component of this pyvene has one (transformers 5 fuses "
                "MoE experts into one module), so it would be silently ignored. Remove moe_key; "
                "see docs/families.md (mixtral) for whole-expert-tensor paths."
            )
        if self.intervention_type is not None and self.intervention is not None:
            raise ConfigError(
                "Only one of the field should be provided: intervention_type, intervention"
            )
        return self

    def to_json_dict(self) -> dict[str, Any]:
        """The fields as JSON values; tensors, classes and modules become 'PLACEHOLDER'."""
        return {k: _jsonable(v) for k, v in self._asdict().items()}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return "PLACEHOLDER"


def to_representation(item: Any) -> RepresentationConfig:
    """Accept a RepresentationConfig, a dict of its fields or a positional list."""
    if isinstance(item, RepresentationConfig):
        return item
    if isinstance(item, dict):
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise ConfigError(choices_message("representation field", unknown[0], FIELDS))
        return RepresentationConfig(**item)
    if isinstance(item, (list, tuple)):
        return RepresentationConfig(*item)
    raise ConfigError(
        f"{type(item).__name__} format in our representation list is not supported; "
        "use a RepresentationConfig, a dict of its fields or a list of its values"
    )


def unknown_keyword(owner: str, bad: str, valid: Iterable[str]) -> ConfigError:
    """ "<owner>: unknown keyword 'x'; did you mean 'y'? valid keywords: ..." as an error."""
    valid = list(valid)
    near = closest(bad, valid, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    return ConfigError(
        f"{owner}: unknown keyword {bad!r}; {hint}valid keywords: {', '.join(valid)}"
    )


@cache
def pretrained_keywords() -> tuple[str, ...]:
    """The keyword arguments ``PretrainedConfig.__init__`` names (``transformers_version``,
    ``return_dict``, ...), which the original passed on from IntervenableConfig."""
    params = inspect.signature(PretrainedConfig.__init__).parameters
    named = [n for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    named += [n for n, p in params.items() if p.kind is p.KEYWORD_ONLY]
    return tuple(dict.fromkeys([*named, "name_or_path", "_name_or_path", "torch_dtype"]))


CONFIG_KEYWORDS = (
    "representations",
    "intervention_types",
    "mode",
    "sorted_keys",
    "model_type",
    "intervention_dimensions",
    "intervention_constant_sources",
)


class IntervenableConfig(PretrainedConfig):
    """A list of representations, the intervention type(s) and the mode.

    ``intervention_types`` is one class for all representations or a list with one class per
    representation; a representation's own ``intervention_type``/``intervention`` wins.

    A ``transformers.PretrainedConfig``, as the original's, so the HF ``Trainer`` and
    ``PreTrainedModel`` helpers that read ``model.config`` (``get_text_config``,
    ``return_dict``, special token ids, ``save_pretrained``) work on an IntervenableModel;
    its JSON form (``to_dict``) stays ours.

    ``kwargs``: ``PretrainedConfig`` keywords (``transformers_version``, ``return_dict``,
    ...), passed on to it as the original does; any other keyword is refused with a
    ConfigError naming the closest valid one.
    """

    def __init__(
        self,
        representations: Any = None,
        intervention_types: Any = None,
        mode: str = "parallel",
        sorted_keys: list[str] | None = None,
        model_type: Any = None,
        intervention_dimensions: list | None = None,
        intervention_constant_sources: list | None = None,
        **kwargs: Any,
    ) -> None:
        for name in kwargs:
            if name not in pretrained_keywords():
                valid = CONFIG_KEYWORDS + pretrained_keywords()
                raise unknown_keyword("IntervenableConfig", name, valid)
        super().__init__(**kwargs)
        if representations is None:
            representations = [RepresentationConfig()]
        if not isinstance(representations, list):
            representations = [representations]
        self.representations = [to_representation(r) for r in representations]
        if mode not in VALID_MODES:
            raise ConfigError(f"unknown mode {mode!r}; valid modes: {', '.join(VALID_MODES)}")
        self.mode = mode
        self.intervention_types = intervention_types
        if isinstance(intervention_types, list) and len(intervention_types) != len(
            self.representations
        ):
            raise ConfigError(
                f"intervention_types has {len(intervention_types)} entries for "
                f"{len(self.representations)} representations; give one class or one per "
                "representation"
            )
        self.sorted_keys = sorted_keys
        self.model_type = model_type
        self.intervention_dimensions = intervention_dimensions
        self.intervention_constant_sources = intervention_constant_sources

    def add_intervention(self, representations: Any) -> None:
        """Append representations; each must name its intervention_type."""
        if not isinstance(representations, list):
            representations = [representations]
        for r in representations:
            r = to_representation(r)
            if r.intervention_type is None and r.intervention is None:
                raise ConfigError("intervention_type should be provided.")
            self.representations.append(r)

    def intervention_type_for(self, index: int) -> Any:
        """The class (or instance) that representation ``index`` should use."""
        rep = self.representations[index]
        if rep.intervention is not None:
            return rep.intervention
        if rep.intervention_type is not None:
            return rep.intervention_type
        types = self.intervention_types
        if isinstance(types, list):
            if index >= len(types):
                raise ConfigError(
                    f"representation {index} has no intervention type: intervention_types lists "
                    f"{len(types)}"
                )
            return types[index]
        if types is None:
            return VanillaIntervention
        return types

    def to_dict(self) -> dict[str, Any]:
        """JSON-able view (classes as names, tensors as placeholders)."""
        types = self.intervention_types
        if isinstance(types, list):
            types = [_type_name(t) for t in types]
        elif types is not None:
            types = _type_name(types)
        return {
            "model_type": None if self.model_type is None else str(self.model_type),
            "representations": [r.to_json_dict() for r in self.representations],
            "intervention_types": types,
            "mode": self.mode,
            "sorted_keys": self.sorted_keys,
            "intervention_dimensions": self.intervention_dimensions,
        }

    def to_json_string(self, use_diff: bool = True) -> str:
        """Our JSON form (``use_diff`` is accepted for PretrainedConfig callers)."""
        return json.dumps(self.to_dict(), indent=4)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IntervenableConfig:
        """Rebuild from :meth:`to_dict` output; intervention names resolve via the registry."""
        reps = []
        for r in data.get("representations", []):
            r = dict(r) if isinstance(r, dict) else dict(zip(FIELDS, r))
            for f in ("intervention", "source_representation"):
                if r.get(f) == "PLACEHOLDER":
                    r[f] = None
            t = r.get("intervention_type")
            r["intervention_type"] = (
                None if t in (None, "PLACEHOLDER") else get_intervention_class(t)
            )
            reps.append(RepresentationConfig(**r))
        types = data.get("intervention_types")
        if isinstance(types, list):
            types = [get_intervention_class(t) for t in types]
        elif types is not None:
            types = get_intervention_class(types)
        return cls(
            reps,
            types,
            mode=data.get("mode", "parallel"),
            sorted_keys=data.get("sorted_keys"),
            model_type=data.get("model_type"),
            intervention_dimensions=data.get("intervention_dimensions"),
        )

    def __repr__(self) -> str:
        return "IntervenableConfig\n" + self.to_json_string()

    __str__ = __repr__


def _type_name(t: Any) -> str:
    name = getattr(t, "registered_name", None)
    if isinstance(t, type) and name:
        return name
    return t.__name__ if isinstance(t, type) else type(t).__name__


__all__ = [
    "CONFIG_KEYWORDS",
    "FIELDS",
    "VALID_MODES",
    "VALID_UNITS",
    "IntervenableConfig",
    "RepresentationConfig",
    "pretrained_keywords",
    "to_representation",
    "unknown_keyword",
]

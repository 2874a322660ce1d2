"""IntervenableModel: wraps a model, resolves every representation to a hook site once,
owns the interventions (an nn.ModuleDict), and runs intervened forwards. Per-call options
never change ``self``; hooks live only for the duration of a call."""

from __future__ import annotations

import json
from typing import Any

import torch
from torch import nn

from .config import VALID_UNITS, IntervenableConfig, RepresentationConfig
from .devices import is_dispatched, place_on_sites
from .engine import Slot
from .errors import ConfigError, UnknownComponentError, choices_message
from .families import is_module_path, resolve_site
from .hooks import dispatch_pairs, hold_dispatchers, is_compiled
from .intervention_table import InterventionDict, _SlotUpdater, build_intervention, make_key
from .interventions.contract import contract


def __getattr__(name: str) -> Any:
    # a transformers ModelOutput: defined in pyvene.outputs, imported on first use
    if name == "IntervenableModelOutput":
        from .outputs import IntervenableModelOutput

        return IntervenableModelOutput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class IntervenableModel(nn.Module):
    """Wrap ``model`` with the interventions that ``config`` declares.

    ``config``: an IntervenableConfig, or a dict / list of dicts of RepresentationConfig
    fields. ``batch_sources``: "auto" runs source and base as one batch when their shapes
    match and the batch is small (faster on memory-bound hardware), True always when
    possible, False never. Wrapping freezes the model's weights (``enable_model_gradients()``
    undoes it).
    """

    BACKEND = "native"

    def __init__(
        self,
        config: Any,
        model: nn.Module,
        batch_sources: bool | str = "auto",
        one_pass_max_tokens: int = 48,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(config, IntervenableConfig):
            config = IntervenableConfig(representations=config)
        self.config = config
        self.mode = config.mode
        self.model = model
        # rows of one batch must not interact for source and base to share it (BatchNorm does)
        coupled = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        self.batch_sources = False if coupled else batch_sources
        self.one_pass_max_tokens = one_pass_max_tokens
        self.use_fast = bool(kwargs.get("use_fast", False))
        self.as_adaptor = bool(kwargs.get("as_adaptor", False))
        self.representations: dict[str, RepresentationConfig] = {}
        self.interventions = InterventionDict()
        self._slots: list[Slot] = []
        self._intervention_reverse_link: dict[str, str] = {}  # linked key -> "link#<link key>"
        self.activations: dict[str, Any] = {}  # what the last call collected (original API)
        self.hot_activations: dict[str, Any] = {}
        self.full_intervention_outputs: list[Any] = []
        seen: dict[str, int] = {}
        links: dict[Any, nn.Module] = {}
        group_keys = [r.group_key for r in config.representations]
        if any(g is not None for g in group_keys) and any(g is None for g in group_keys):
            raise ConfigError("if any representation has a group_key, all must have one")
        ordered_groups = sorted({g for g in group_keys if g is not None})
        for i, rep in enumerate(config.representations):
            key = make_key(rep, seen)
            site = resolve_site(model, rep.layer, rep.component)
            self._check_unit(rep, site)
            embed_dim = None if site.dim is None else site.dim * rep.max_number_of_units
            if rep.intervention_link_key is not None:
                self._intervention_reverse_link[key] = f"link#{rep.intervention_link_key}"
            if rep.intervention_link_key is not None and rep.intervention_link_key in links:
                intervention = links[rep.intervention_link_key]
            else:
                spec = config.intervention_type_for(i)
                intervention = build_intervention(spec, rep, embed_dim)
                if self.use_fast and hasattr(intervention, "use_fast"):
                    intervention.use_fast = True
                if rep.intervention_link_key is not None:
                    links[rep.intervention_link_key] = intervention
            group = i if rep.group_key is None else ordered_groups.index(rep.group_key)
            self.representations[key] = rep
            self.interventions[key] = intervention
            self._slots.append(Slot(key, site, intervention, rep.unit, group, i))
        if ordered_groups:
            self._n_groups = len(ordered_groups)
        else:
            self._n_groups = len(self._slots)
        self.interventions.__dict__["_on_replace"] = _SlotUpdater(self._slots)
        self.disable_model_gradients()
        self._site_devices = place_on_sites(model, self._slots)
        if is_compiled(model):  # compiled graphs must see the dispatchers from the first call
            hold_dispatchers(self, dispatch_pairs(model, self._slots))

    @staticmethod
    def _check_unit(rep: RepresentationConfig, site) -> None:
        if rep.unit not in VALID_UNITS and "." not in rep.unit:
            raise ConfigError(choices_message("unit", rep.unit, VALID_UNITS))
        if rep.unit.startswith("h") and site.heads is None and not is_module_path(rep.component):
            raise UnknownComponentError(
                f"unit {rep.unit!r} selects heads, but {rep.component!r} has no head split; use "
                "a head_* component (e.g. head_attention_value_output) or unit 'pos'"
            )

    # -- introspection -----------------------------------------------------------------------
    @property
    def sorted_keys(self) -> list[str]:
        return [s.key for s in self._slots]

    # original-API attributes that tests and tutorials read
    @property
    def is_model_stateless(self) -> bool:
        """False for recurrent models (their family has per-timestep components), as the
        original reports for its GRU classes."""
        from .families import family_of

        family = family_of(self.model)
        return not (family and any(c.per_step for c in family.components.values()))

    @property
    def _intervention_group(self) -> dict[int, list[str]]:
        groups: dict[int, list[str]] = {}
        for s in self._slots:
            groups.setdefault(s.group, []).append(s.key)
        return groups

    def get_cached_activations(self) -> dict[str, Any]:
        """key -> what the last call collected (empty after a call that collects nothing)."""
        return self.activations

    def get_cached_hot_activations(self) -> dict[str, Any]:
        """The original's per-timestep cache of stateful models; calls keep no such state."""
        return self.hot_activations

    @property
    def return_collect_activations(self) -> bool:
        return any(contract(s.intervention).collects for s in self._slots)

    @property
    def model_config(self) -> Any:
        return getattr(self.model, "config", None)

    @property
    def model_type(self) -> type:
        return type(self.model)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary: model type, keys with their module, hook side and width."""
        return {
            "model_type": type(self.model).__name__,
            "mode": self.mode,
            "interventions": {
                s.key: {
                    "type": type(s.intervention).__name__,
                    "module": s.site.module_path,
                    "hook": s.site.hook,
                    "dim": s.site.dim,
                    "heads": s.site.heads,
                    "unit": s.unit,
                    "group": s.group,
                }
                for s in self._slots
            },
        }

    def __str__(self) -> str:
        return json.dumps(self.describe(), indent=4)

    # -- calls -------------------------------------------------------------------------------
    def forward(
        self,
        base: Any,
        sources: Any = None,
        unit_locations: dict | None = None,
        source_representations: Any = None,
        subspaces: Any = None,
        labels: torch.Tensor | None = None,
        output_original_output: bool = False,
        return_dict: bool | None = None,
        use_cache: bool | None = None,
        intervention_additional_kwargs: dict | None = None,
    ) -> Any:
        """Run the base input with interventions. Returns ``(original_or_None, intervened)``,
        ``((original_or_None, collected_list), intervened)`` when collecting, or an
        IntervenableModelOutput with ``return_dict=True``."""
        from .calls import intervened_call
        from .distributed import check_not_wrapped_alone

        check_not_wrapped_alone(self)
        return intervened_call(
            self,
            base,
            sources,
            unit_locations,
            source_representations,
            subspaces,
            labels,
            output_original_output,
            return_dict,
            use_cache,
            intervention_additional_kwargs,
        )

    def generate(self, base: Any, *args: Any, **kwargs: Any) -> Any:
        """Generation with interventions; see :mod:`pyvene.generation`."""
        from .generation import generate

        return generate(self, base, *args, **kwargs)

    # -- persistence (see :mod:`pyvene.serialization`) ----------------------------------------
    def save(self, save_directory: str, **kwargs: Any) -> None:
        from .serialization import save

        save(self, save_directory, **kwargs)

    @staticmethod
    def load(load_directory: str, model: nn.Module, **kwargs: Any) -> IntervenableModel:
        from .serialization import load

        return load(load_directory, model, **kwargs)

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> None:
        """Save to a temporary folder and upload it to the hub repo ``repo_id``."""
        from .serialization import push_to_hub

        push_to_hub(self, repo_id, **kwargs)

    def save_intervention(self, save_directory: str, **kwargs: Any) -> None:
        from .serialization import save_intervention

        save_intervention(self, save_directory, **kwargs)

    def load_intervention(self, load_directory: str, **kwargs: Any) -> None:
        from .serialization import load_intervention

        load_intervention(self, load_directory, **kwargs)

    # -- training helpers --------------------------------------------------------------------
    def _unique_interventions(self) -> list[nn.Module]:
        seen: dict[int, nn.Module] = {}
        for s in self._slots:
            seen.setdefault(id(s.intervention), s.intervention)
        return list(seen.values())

    def get_trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of trainable interventions, then model weights that require grad."""
        params = [
            p for i in self._unique_interventions() if contract(i).trainable for p in i.parameters()
        ]
        return params + [p for p in self.model.parameters() if p.requires_grad]

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate=True):
        """Only what training should touch: intervention parameters and unfrozen weights."""
        seen: set[int] = set()
        for key, i in self.interventions.items():
            for name, p in i.named_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield f"{prefix}interventions.{key}.{name}", p
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                yield f"{prefix}model.{name}", p

    def count_parameters(self, include_model: bool = False) -> int:
        """Trainable intervention parameters (each linked intervention once)."""
        total = sum(
            p.numel()
            for i in self._unique_interventions()
            if contract(i).trainable
            for p in i.parameters()
            if p.requires_grad
        )
        if include_model:
            total += sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return total

    def disable_model_gradients(self) -> None:
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model_has_grad = False

    def enable_model_gradients(self) -> None:
        self.model.train()
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.model_has_grad = True

    def disable_intervention_gradients(self) -> None:
        pass

    def set_temperature(self, temp: float | torch.Tensor) -> None:
        """Set the temperature of every intervention that has one (Boundless, SigmoidMask)."""
        for i in self._unique_interventions():
            if hasattr(i, "set_temperature"):
                i.set_temperature(temp)

    def set_zero_grad(self) -> None:
        for i in self._unique_interventions():
            if contract(i).trainable:
                i.zero_grad()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for i in self._unique_interventions():
            i.zero_grad(set_to_none=set_to_none)

    def train(self, mode: bool = True) -> IntervenableModel:
        self.training = mode
        self.model.train(mode)
        for i in self._unique_interventions():
            i.train(mode)
        return self

    def eval(self) -> IntervenableModel:
        return self.train(False)

    def place_on_sites(self, default: Any = None) -> None:
        """Move every intervention to the device its site runs on (dtype kept); sites whose
        device is unknown (no weights) use ``default`` when given."""
        self._site_devices = place_on_sites(self.model, self._slots)
        if default is not None:
            for slot in self._slots:
                if self._site_devices.get(slot.key) is None:
                    slot.intervention.to(default)

    def set_device(self, device: Any, set_model: bool = True) -> None:
        """Move the model to ``device`` (``set_model=True``), then each intervention to its
        site's device. A model dispatched by accelerate (``hf_device_map``, offload hooks)
        keeps its device map: ``set_model=True`` is refused there."""
        if set_model:
            if is_dispatched(self.model):
                from .errors import DeviceError

                raise DeviceError(
                    f"set_device({device!r}, set_model=True): this model is dispatched by "
                    "accelerate (hf_device_map / offload hooks), and moving it would break its "
                    "device map; use set_device(..., set_model=False) (interventions follow "
                    "their sites) or move the model with accelerate"
                )
            self.model.to(device)
        self.place_on_sites(default=device)

    def get_device(self) -> torch.device:
        """The device of the first site with a known device (never a ``meta`` parameter)."""
        for device in self._site_devices.values():
            if device is not None:
                return device
        real = (p.device for p in self.model.parameters() if p.device.type != "meta")
        return next(real, torch.device("cpu"))

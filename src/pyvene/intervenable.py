"""IntervenableModel: wraps a model, resolves every representation to a hook site once (its
:class:`~pyvene.plan.InterventionPlan`, ``pvm.plan``), owns the interventions (an
nn.ModuleDict), and runs intervened calls through :mod:`pyvene.pipeline`. Per-call options
never change ``self``; hooks live only for the duration of a call; what a call collected is
returned (the original's ``activations`` / ``full_intervention_outputs`` attributes are
read-only views of the last call)."""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import torch
from torch import nn

from .calls import intervened_call
from .config import IntervenableConfig, unknown_keyword
from .distributed import check_not_wrapped_alone
from .errors import user_stacklevel
from .families import family_of
from .generation import generate as generate_call
from .hooks import dispatch_pairs, forget_compiled_code, hold_dispatchers, is_compiled
from .intervenable_training import TrainingMethods
from .outputs import IntervenableModelOutput as IntervenableModelOutput
from .pipeline import CallRecord
from .plan import InterventionPlan, build_plan
from .serialization import push_to_hub, read_saved, save
from .trainable_io import load_intervention, save_intervention

INIT_KEYWORDS = ("batch_sources", "one_pass_max_tokens", "use_fast", "as_adaptor",
                 "intervenables_sort_fn")  # fmt: skip


class IntervenableModel(TrainingMethods, nn.Module):
    """Wrap ``model`` with the interventions that ``config`` declares.

    ``config``: an IntervenableConfig, or a dict / list of dicts of RepresentationConfig
    fields. ``batch_sources``: "auto" runs source and base as one batch when their shapes
    match and the batch is small (faster on memory-bound hardware), True always when
    possible, False never; ``one_pass_max_tokens``: the "auto" limit (batch x sequence).
    ``use_fast`` (original API): every intervention uses the first example's subspaces for
    the whole batch. ``as_adaptor`` (original API): interventions also receive the hooked
    module's input as ``args``. ``intervenables_sort_fn`` (original API placeholder): keys
    always follow config order, so a given function is not called (a warning says so). Any
    other keyword is refused with a ConfigError naming the closest valid one. Wrapping
    freezes the model's weights (``enable_model_gradients()`` undoes it).
    """

    def __init__(
        self,
        config: Any,
        model: nn.Module,
        batch_sources: bool | str = "auto",
        one_pass_max_tokens: int = 48,
        use_fast: bool = False,
        as_adaptor: bool = False,
        intervenables_sort_fn: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise unknown_keyword("IntervenableModel", next(iter(kwargs)), INIT_KEYWORDS)
        if intervenables_sort_fn is not None:
            warnings.warn(
                "intervenables_sort_fn is not used: intervention keys always follow the order "
                "of the representations in the config (order them there instead)",
                UserWarning,
                stacklevel=user_stacklevel(),
            )
        super().__init__()
        if not isinstance(config, IntervenableConfig):
            config = IntervenableConfig(representations=config)
        self.config = config
        self.model = model
        self.plan: InterventionPlan = build_plan(
            config, model, batch_sources, one_pass_max_tokens, bool(use_fast), bool(as_adaptor)
        )
        self.interventions = self.plan.table
        self._last_call = CallRecord()
        self.disable_model_gradients()
        self.plan.place(model)
        self._holding = False
        self._hold_if_compiled(deep=True)

    def _hold_if_compiled(self, deep: bool = False) -> None:
        """On a compiled model (checked at construction, ``deep``: submodules too, and at each
        call: the model itself, e.g. ``model.compile()`` after wrapping), keep the sites'
        dispatchers installed from now on, and drop compiled graphs traced without them."""
        if self._holding or not is_compiled(self.model, deep):
            return
        self._holding = True
        if hold_dispatchers(self, dispatch_pairs(self.model, self.plan.slots)):
            forget_compiled_code()  # graphs traced before they were there (if any)

    # -- the plan's options (read-only) --------------------------------------------------------
    @property
    def mode(self) -> str:
        """ "parallel" or "serial" (from the config)."""
        return self.plan.mode

    @property
    def batch_sources(self) -> bool | str:
        """Whether source and base may share one batch (False for BatchNorm models)."""
        return self.plan.batch_sources

    @property
    def one_pass_max_tokens(self) -> int:
        """The batch x sequence limit of ``batch_sources="auto"``."""
        return self.plan.one_pass_max_tokens

    @property
    def use_fast(self) -> bool:
        """Original API: interventions use the first example's subspaces for the batch."""
        return self.plan.use_fast

    @property
    def as_adaptor(self) -> bool:
        """Original API: interventions also receive the hooked module's input."""
        return self.plan.as_adaptor

    @property
    def representations(self) -> dict[str, Any]:
        """key -> RepresentationConfig, in config order."""
        return self.plan.representations

    # -- introspection -----------------------------------------------------------------------
    @property
    def sorted_keys(self) -> list[str]:
        """Intervention keys in config order."""
        return self.plan.keys

    # original-API attributes that tests and tutorials read
    @property
    def is_model_stateless(self) -> bool:
        """False for recurrent models (their family has per-timestep components), as the
        original reports for its GRU classes."""
        family = family_of(self.model)
        return not (family and any(c.per_step for c in family.components.values()))

    @property
    def _intervention_group(self) -> dict[int, list[str]]:
        """Original API: group index -> keys."""
        return self.plan.groups

    @property
    def _intervention_reverse_link(self) -> dict[str, str]:
        """Original API: linked key -> ``"link#<intervention_link_key>"``."""
        return self.plan.reverse_links

    @property
    def activations(self) -> dict[str, Any]:
        """Original API, read-only view of the last call: key -> what it collected (empty
        after a call that collects nothing). Calls return the same values."""
        return self._last_call.activations

    @property
    def hot_activations(self) -> dict[str, Any]:
        """Original API: the per-timestep cache of stateful models; calls keep no such
        state, so it is always empty."""
        return {}

    @property
    def full_intervention_outputs(self) -> list[Any]:
        """Original API, read-only view of the last call: the full outputs (e.g.
        InterventionOutput with ``latent``) of its constant-source interventions."""
        return self._last_call.full_outputs

    def get_cached_activations(self) -> dict[str, Any]:
        """key -> what the last call collected (empty after a call that collects nothing)."""
        return self.activations

    def get_cached_hot_activations(self) -> dict[str, Any]:
        """The original's per-timestep cache of stateful models; calls keep no such state."""
        return self.hot_activations

    @property
    def return_collect_activations(self) -> bool:
        """True when some intervention collects."""
        return bool(self.plan.collect_keys)

    @property
    def model_config(self) -> Any:
        """The wrapped model's ``config`` (None when it has none)."""
        return getattr(self.model, "config", None)

    @property
    def model_type(self) -> type:
        """The wrapped model's class."""
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
                for s in self.plan.slots
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
        IntervenableModelOutput with ``return_dict=True``; see :mod:`pyvene.calls`."""
        check_not_wrapped_alone(self)
        self._hold_if_compiled()
        result, self._last_call = intervened_call(
            self.plan,
            self.model,
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
        return result

    def generate(
        self,
        base: Any,
        sources: Any = None,
        unit_locations: dict | None = None,
        source_representations: Any = None,
        intervene_on_prompt: bool = False,
        subspaces: Any = None,
        output_original_output: bool = False,
        intervention_additional_kwargs: dict | None = None,
        timestep_selector: Any = None,
        **kwargs: Any,
    ) -> Any:
        """HF ``model.generate(**base, **kwargs)`` with interventions (KV cache kept on).
        Returns ``(original_or_None, generated)`` or, with collect interventions,
        ``((original_or_None, collected_list), generated)``. When each intervention fires
        (prompt call, decoding steps, ``timestep_selector``): see :mod:`pyvene.generation`."""
        self._hold_if_compiled()
        result, self._last_call = generate_call(
            self.plan,
            self.model,
            base,
            sources,
            unit_locations,
            source_representations,
            intervene_on_prompt,
            subspaces,
            output_original_output,
            intervention_additional_kwargs,
            timestep_selector,
            **kwargs,
        )
        return result

    # -- persistence (see :mod:`pyvene.serialization`) ----------------------------------------
    def save(
        self,
        save_directory: str | os.PathLike,
        save_to_hf_hub: bool = False,
        hf_repo_name: str | None = None,
        include_model: bool = False,
        private: bool = False,
        token: str | bool | None = None,
    ) -> None:
        """Write ``config.json`` + ``interventions.safetensors`` to ``save_directory`` (+
        ``model.safetensors`` with the model weights that require grad when
        ``include_model``); with ``save_to_hf_hub``, upload to ``hf_repo_name``."""
        save(self, save_directory, save_to_hf_hub, hf_repo_name, include_model, private, token)

    @staticmethod
    def load(
        load_directory: str | os.PathLike,
        model: nn.Module,
        local_directory: str | os.PathLike | None = None,
        from_huggingface_hub: bool = False,
        include_model: bool = False,
        cache_dir: str | os.PathLike | None = None,
        revision: str | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
    ) -> IntervenableModel:
        """A new IntervenableModel on ``model`` from a folder written by :meth:`save` (or
        by the original pyvene) or a hub repo id; every file is checked before ``model``
        changes. ``include_model`` also loads the saved model weights."""
        config, weights = read_saved(
            load_directory,
            model,
            local_directory,
            from_huggingface_hub,
            include_model,
            cache_dir,
            revision,
            token,
            local_files_only,
        )
        pvm = IntervenableModel(config, model)  # the first change to anything: all checks passed
        if weights:
            model.load_state_dict(weights, strict=False)
        pvm.place_on_sites()  # each on its site's device (the model may be offloaded)
        return pvm

    def push_to_hub(
        self,
        repo_id: str,
        include_model: bool = False,
        private: bool = False,
        token: str | bool | None = None,
    ) -> None:
        """Save to a temporary folder and upload it to the hub repo ``repo_id``."""
        push_to_hub(self, repo_id, include_model, private, token)

    def save_intervention(
        self, save_directory: str | os.PathLike, include_model: bool = True
    ) -> None:
        """Write the trainable interventions' weights (+ the model weights that require
        grad with ``include_model``) to ``save_directory``; see :mod:`pyvene.trainable_io`."""
        save_intervention(self, save_directory, include_model)

    def load_intervention(
        self, load_directory: str | os.PathLike, include_model: bool = True
    ) -> None:
        """Load trainable weights saved by :meth:`save_intervention` (or :meth:`save`, or
        the original's ``intkey_*.bin``) into this model's interventions."""
        load_intervention(self, load_directory, include_model)


__all__ = ["INIT_KEYWORDS", "IntervenableModel", "IntervenableModelOutput"]

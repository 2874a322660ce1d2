"""The intervention plan of an IntervenableModel: every representation resolved to a hook
site once, its intervention built, its group and the model-level call options, in one public
object (``pvm.plan``) that the call pipeline (:mod:`pyvene.pipeline`, :mod:`pyvene.calls`,
:mod:`pyvene.generation`) and persistence read. Built once by :func:`build_plan`; a call
never changes it (``interventions[key] = m`` repoints the key's slot, see
:class:`~pyvene.intervention_table.SlotUpdater`, and ``place_on_sites`` refreshes the
site devices)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import VALID_UNITS, IntervenableConfig, RepresentationConfig
from .devices import place_on_sites
from .engine import Slot
from .errors import ConfigError, UnknownComponentError, choices_message
from .families import HookSite, is_module_path, resolve_site
from .intervention_table import InterventionDict, SlotUpdater, build_intervention, make_key
from .interventions.contract import contract


@dataclass
class InterventionPlan:
    """Slots in config order, their groups, the mode and the call options.

    ``slots``: one :class:`~pyvene.engine.Slot` per representation (key, site, intervention,
    unit, group). ``n_groups``: how many source groups a call takes. ``batch_sources`` /
    ``one_pass_max_tokens``: when source and base share one batch. ``as_adaptor``: setters
    also pass the module input. ``has_use_cache``: the model's config has ``use_cache``.
    ``token_ids``: the model embeds ``input_ids`` (float ids are refused before a call).
    ``table``: the key -> intervention ModuleDict (with the seeds' key aliases).
    ``site_devices``: key -> the device its site runs on (None: unknown).
    """

    slots: list[Slot]
    n_groups: int
    mode: str
    batch_sources: bool | str
    one_pass_max_tokens: int
    as_adaptor: bool
    use_fast: bool
    has_use_cache: bool
    token_ids: bool
    table: InterventionDict
    representations: dict[str, RepresentationConfig]
    reverse_links: dict[str, str]
    site_devices: dict[str, torch.device | None] = field(default_factory=dict)

    @property
    def keys(self) -> list[str]:
        """Intervention keys in config order (the original's ``sorted_keys``)."""
        return [s.key for s in self.slots]

    @property
    def units(self) -> list[str]:
        return [s.unit for s in self.slots]

    @property
    def collect_keys(self) -> list[str]:
        """Keys of the interventions that collect (their results are returned, in order)."""
        return [s.key for s in self.slots if contract(s.intervention).collects]

    @property
    def groups(self) -> dict[int, list[str]]:
        """group index -> keys (the original's ``_intervention_group``)."""
        out: dict[int, list[str]] = {}
        for s in self.slots:
            out.setdefault(s.group, []).append(s.key)
        return out

    def resolve(self, key: str) -> str:
        """The table key for ``key`` or one of its aliases (UnknownKeyError otherwise)."""
        return self.table.resolve(key)

    def unique_interventions(self) -> list[nn.Module]:
        """Each intervention once (linked keys share one), in config order."""
        seen: dict[int, nn.Module] = {}
        for s in self.slots:
            seen.setdefault(id(s.intervention), s.intervention)
        return list(seen.values())

    def place(self, model: nn.Module, default: Any = None) -> None:
        """Move every intervention to its site's device (``default`` where unknown)."""
        self.site_devices = place_on_sites(model, self.slots)
        if default is not None:
            for slot in self.slots:
                if self.site_devices.get(slot.key) is None:
                    slot.intervention.to(default)


def build_plan(
    config: IntervenableConfig,
    model: nn.Module,
    batch_sources: bool | str = "auto",
    one_pass_max_tokens: int = 48,
    use_fast: bool = False,
    as_adaptor: bool = False,
) -> InterventionPlan:
    """Resolve every representation of ``config`` on ``model``, build (or link) its
    intervention and group it. Nothing in the model changes."""
    group_keys = [r.group_key for r in config.representations]
    if any(g is not None for g in group_keys) and any(g is None for g in group_keys):
        raise ConfigError("if any representation has a group_key, all must have one")
    ordered_groups = sorted({g for g in group_keys if g is not None})
    table = InterventionDict()
    representations: dict[str, RepresentationConfig] = {}
    reverse_links: dict[str, str] = {}  # linked key -> "link#<link key>"
    slots: list[Slot] = []
    seen: dict[str, int] = {}
    links: dict[Any, nn.Module] = {}
    for i, rep in enumerate(config.representations):
        key = make_key(rep, seen)
        site = resolve_site(model, rep.layer, rep.component)
        check_unit(rep, site)
        embed_dim = None if site.dim is None else site.dim * rep.max_number_of_units
        link = rep.intervention_link_key
        if link is not None:
            reverse_links[key] = f"link#{link}"
        if link is not None and link in links:
            intervention = links[link]
        else:
            intervention = build_intervention(config.intervention_type_for(i), rep, embed_dim)
            if use_fast and hasattr(intervention, "use_fast"):
                intervention.use_fast = True
            if link is not None:
                links[link] = intervention
        group = i if rep.group_key is None else ordered_groups.index(rep.group_key)
        representations[key] = rep
        table[key] = intervention
        slots.append(Slot(key, site, intervention, rep.unit, group, i))
    table.seal(SlotUpdater(slots))  # from now on replacing a key repoints its slot
    # rows of one batch must not interact for source and base to share it (BatchNorm does)
    coupled = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    model_config = getattr(model, "config", None)
    return InterventionPlan(
        slots=slots,
        n_groups=len(ordered_groups) if ordered_groups else len(slots),
        mode=config.mode,
        batch_sources=False if coupled else batch_sources,
        one_pass_max_tokens=one_pass_max_tokens,
        as_adaptor=as_adaptor,
        use_fast=use_fast,
        has_use_cache=model_config is not None and hasattr(model_config, "use_cache"),
        token_ids=takes_token_ids(model),
        table=table,
        representations=representations,
        reverse_links=reverse_links,
    )


def takes_token_ids(model: nn.Module) -> bool:
    """True when ``model.get_input_embeddings()`` is an ``nn.Embedding``."""
    getter = getattr(model, "get_input_embeddings", None)
    try:
        emb = getter() if callable(getter) else None
    except (NotImplementedError, AttributeError):
        return False
    return isinstance(emb, nn.Embedding)


def check_unit(rep: RepresentationConfig, site: HookSite) -> None:
    """Refuse a unit that is unknown, or that selects heads of a site with no head split."""
    if rep.unit not in VALID_UNITS and "." not in rep.unit:
        raise ConfigError(choices_message("unit", rep.unit, VALID_UNITS))
    if rep.unit.startswith("h") and site.heads is None and not is_module_path(rep.component):
        raise UnknownComponentError(
            f"unit {rep.unit!r} selects heads, but {rep.component!r} has no head split; use "
            "a head_* component (e.g. head_attention_value_output) or unit 'pos'"
        )


__all__ = ["InterventionPlan", "build_plan", "check_unit", "takes_token_ids"]

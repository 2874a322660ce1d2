"""Samplers and (counter)factual datasets of a :class:`~pyvene.causal_model.CausalModel`.

The functions read the model only through its public attributes and methods; they import the
shared values (:mod:`pyvene.causal_values`), never the model's module, which imports them for
its delegating methods. :mod:`pyvene.causal_datasets` is the public home of these names.

Examples are sampled and evaluated in Python (samplers and variable functions are arbitrary
callables), but tensors are built once per field for the whole dataset, so 1e5 examples take
seconds; ``stacked=True`` skips the per-example views altogether.

Fixes of the original's bugs: exactly ``size`` examples are returned (it overshot to a multiple
of ``batch_size``; here the last group sharing an intervention may be shorter);
``input_function``/``output_function`` are honoured by the counterfactual generator too; its
default sampler is ``sample_input_tree_balanced`` (the original default could not take the
``output_var`` keywords: ``TypeError``), and a sampler without those keywords is called
without them (its sources are then unconstrained; labels are exact either way, from
``run_interchange``); the factual ``filter`` sees the total setting, a superset of the input;
``seed`` reseeds ``model.rng``; rejection loops stop after ``max_tries``. The tree-balanced
sampler no longer returns one shared dict (mutable default argument), picks only values that
some input can produce, accepts an input ``output_var`` and checks its result when variables
share ancestors.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .causal_values import CausalModelError, Setting, flatten_value

if TYPE_CHECKING:  # annotations only: the model's module imports this one
    from .causal_model import CausalModel

Example = dict[str, Any]
ToTensor = Callable[[Mapping[str, Any]], torch.Tensor]


def sample_input_tree_balanced(
    model: CausalModel,
    output_var: str | None = None,
    output_var_value: Any = None,
    max_tries: int = 1_000,
) -> Setting:
    """An input whose ``output_var`` (default: the single output) is ``output_var_value``
    (default: uniform over the values some input produces), choosing parent assignments
    uniformly from the equivalence classes top-down; inputs outside that tree are uniform."""
    rng = model.rng
    if output_var is None:
        if len(model.outputs) != 1:
            raise CausalModelError(f"several outputs {model.outputs}: pass output_var")
        output_var = model.outputs[0]
    model.check_names([output_var])
    if output_var in model.inputs:
        value = (
            rng.choice(model.values[output_var]) if output_var_value is None else output_var_value
        )
        return {v: value if v == output_var else rng.choice(model.values[v]) for v in model.inputs}
    classes = model.balanced_classes()
    if output_var_value is not None and output_var_value not in classes[output_var]:
        raise CausalModelError(
            f"{output_var}={output_var_value!r} cannot be produced by any input; "
            f"reachable values: {list(classes[output_var])}"
        )
    shared = any(len(c) > 1 for c in model.children.values())
    for _ in range(max_tries):
        value = (
            rng.choice(list(classes[output_var])) if output_var_value is None else output_var_value
        )
        inp: Setting = {}
        stack = [(output_var, value)]
        while stack:
            var, val = stack.pop()
            for p, pval in rng.choice(classes[var][val]).items():
                if p in model.inputs:
                    inp[p] = pval
                else:
                    stack.append((p, pval))
        inp.update({v: rng.choice(model.values[v]) for v in model.inputs if v not in inp})
        if not shared or model.run_forward(inp)[output_var] == value:
            return {v: inp[v] for v in model.inputs}
    raise CausalModelError(f"no consistent input for {output_var}={value!r} in {max_tries} tries")


def _column(settings: Sequence[Mapping[str, Any]], var: str) -> torch.Tensor:
    """``[n, features]`` float tensor of one variable: one C-level conversion when the values are
    Python scalars or flat tuples/lists of them, else :func:`flatten_value` per value."""
    vals = [s[var] for s in settings]
    if isinstance(vals[0], (bool, int, float, tuple, list)):
        try:
            return torch.tensor(vals, dtype=torch.float32).reshape(len(vals), -1)
        except (TypeError, ValueError, RuntimeError):
            pass
    return torch.tensor([flatten_value(v) for v in vals], dtype=torch.float32)


def _rows(
    settings: Sequence[Mapping[str, Any]], variables: Sequence[str], fn: ToTensor | None
) -> torch.Tensor:
    """``[len(settings), ...]``: ``fn`` per setting and stacked, or ``variables`` concatenated."""
    if fn is not None:
        return torch.stack([fn(s) for s in settings])
    try:
        return torch.cat([_column(settings, v) for v in variables], dim=1)
    except (ValueError, RuntimeError) as e:
        raise CausalModelError(
            f"values of {list(variables)} flatten to different lengths across examples; "
            "pass input_function/output_function"
        ) from e


def _split(fields: dict[str, torch.Tensor], device: Any, stacked: bool) -> Any:
    fields = {k: t.to(device) for k, t in fields.items()}
    if stacked:
        return fields
    cols = {k: t.unbind(0) for k, t in fields.items()}
    return [dict(zip(cols, row)) for row in zip(*cols.values())]


def _check(size: int, max_tries: int) -> None:
    if not isinstance(size, int) or size < 0 or max_tries < 1:
        raise CausalModelError(f"need size >= 0 and max_tries >= 1, got {size!r}, {max_tries!r}")


def generate_factual_dataset(
    model: CausalModel,
    size: int,
    sampler: Callable[[], Setting] | None = None,
    filter: Callable[[Setting], bool] | None = None,
    device: str | torch.device = "cpu",
    input_function: ToTensor | None = None,
    output_function: ToTensor | None = None,
    return_tensors: bool = True,
    seed: int | None = None,
    max_tries: int = 10_000,
    stacked: bool = False,
) -> list[Example] | dict[str, torch.Tensor]:
    """``size`` examples ``{"input_ids", "labels"}`` of the unintervened model.

    ``sampler()`` gives an input (default ``model.sample_input``), ``filter(total setting)``
    rejects. Tensors: ``input_ids [n_input_features]``, ``labels [n_output_features]`` (via
    ``model.input_to_tensor``/``output_to_tensor`` semantics unless functions are given);
    ``stacked=True`` gives ``{field: [size, ...]}`` instead of a list; ``return_tensors=False``
    gives the input dict and the total setting.
    """
    _check(size, max_tries)
    if seed is not None:
        model.rng.seed(seed)
    sampler = sampler or model.sample_input
    inputs, totals, misses = [], [], 0
    while len(inputs) < size:
        inp = sampler()
        total = model.run_forward(inp)
        if filter is None or filter(total):
            inputs.append(inp)
            totals.append(total)
            misses = 0
        elif (misses := misses + 1) >= max_tries:
            raise CausalModelError(f"filter rejected {max_tries} samples in a row")
    if not return_tensors or not inputs:
        return [{"input_ids": i, "labels": t} for i, t in zip(inputs, totals)]
    x = _rows(inputs, model.inputs, input_function)
    y = _rows(totals, model.outputs, output_function)
    return _split({"input_ids": x, "labels": y}, device, stacked)


def _accepts_target(sampler: Callable[..., Setting]) -> bool:
    """Does ``sampler`` take the ``output_var``/``output_var_value`` keywords?"""
    try:
        params = inspect.signature(sampler).parameters.values()
    except (TypeError, ValueError):
        return True
    names = {p.name for p in params}
    return {"output_var", "output_var_value"} <= names or any(
        p.kind is p.VAR_KEYWORD for p in params
    )


def generate_counterfactual_dataset(
    model: CausalModel,
    size: int,
    intervention_id: Callable[[Setting], int],
    batch_size: int,
    sampler: Callable[..., Setting] | None = None,
    intervention_sampler: Callable[[], Setting] | None = None,
    filter: Callable[[Setting], bool] | None = None,
    device: str | torch.device = "cpu",
    input_function: ToTensor | None = None,
    output_function: ToTensor | None = None,
    return_tensors: bool = True,
    seed: int | None = None,
    max_tries: int = 10_000,
    stacked: bool = False,
) -> list[Example] | dict[str, torch.Tensor]:
    """``size`` interchange-intervention examples; each group of ``batch_size`` consecutive ones
    shares an intervention ``{variable: value}`` from ``intervention_sampler`` (default
    ``model.sample_intervention``; ``filter(intervention)`` rejects).

    Per example: ``base = sampler()`` and, per intervened variable in model order, ``source =
    sampler(output_var=var, output_var_value=value)``. Fields: ``input_ids`` (base),
    ``source_input_ids [n_slots, ...]`` (sources packed in variable order, zero-padded to
    ``n_slots = max(#intermediates, largest intervention)``; ``intervention_id`` says which),
    ``labels`` (outputs of ``run_interchange(base, {var: source})``), ``base_labels`` (outputs of
    ``run_forward(base)``), ``intervention_id`` (``[1]``, long). ``stacked=True``: ``{field:
    [size, ...]}``. ``return_tensors=False``: dicts, sources padded with ``{}``, full settings
    as labels, ``[id]``.
    """
    _check(size, max_tries)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise CausalModelError(f"batch_size must be a positive int, got {batch_size!r}")
    if seed is not None:
        model.rng.seed(seed)
    if sampler is None:

        def sampler(output_var: str | None = None, output_var_value: Any = None) -> Setting:
            if output_var is None and len(model.outputs) != 1:
                return model.sample_input()
            return model.sample_input_tree_balanced(output_var, output_var_value)

    targeted = _accepts_target(sampler)
    intervention_sampler = intervention_sampler or model.sample_intervention
    bases, sources, labels, base_labels, ids = [], [], [], [], []
    misses = 0
    while len(bases) < size:
        iv = intervention_sampler()
        model.check_names(iv)
        if filter is not None and not filter(iv):
            if (misses := misses + 1) >= max_tries:
                raise CausalModelError(f"filter rejected {max_tries} interventions in a row")
            continue
        misses, iid = 0, intervention_id(iv)
        order = [v for v in model.variables if v in iv]
        for _ in range(min(batch_size, size - len(bases))):
            base = sampler()
            srcs = [
                sampler(output_var=v, output_var_value=iv[v]) if targeted else sampler()
                for v in order
            ]
            fixed = dict(base)
            fixed.update({v: model.run_forward(src)[v] for v, src in zip(order, srcs)})
            bases.append(base)
            sources.append(srcs)
            labels.append(model.run_forward(fixed))
            base_labels.append(model.run_forward(base))
            ids.append(iid)
    n_slots = max([len(model.intermediates)] + [len(s) for s in sources])
    if not return_tensors or not bases:
        return [
            {"input_ids": b, "source_input_ids": s + [{}] * (n_slots - len(s)), "labels": y,
             "base_labels": yb, "intervention_id": [i]}
            for b, s, y, yb, i in zip(bases, sources, labels, base_labels, ids)
        ]  # fmt: skip
    x = _rows(bases, model.inputs, input_function)
    flat = [s for srcs in sources for s in srcs]
    src = torch.zeros((len(bases), n_slots, *x.shape[1:]), dtype=x.dtype)
    if flat:  # scatter all sources at once: row n, slot j
        rows = torch.tensor([n for n, s in enumerate(sources) for _ in s])
        slots = torch.tensor([j for s in sources for j in range(len(s))])
        src[rows, slots] = _rows(flat, model.inputs, input_function).to(x.dtype)
    fields = {
        "input_ids": x,
        "source_input_ids": src,
        "labels": _rows(labels, model.outputs, output_function),
        "base_labels": _rows(base_labels, model.outputs, output_function),
        "intervention_id": torch.tensor(ids, dtype=torch.long).unsqueeze(1),
    }
    return _split(fields, device, stacked)


__all__ = [
    "Example",
    "ToTensor",
    "generate_counterfactual_dataset",
    "generate_factual_dataset",
    "sample_input_tree_balanced",
]

"""(Counter)factual datasets from a :class:`~pyvene.causal_model.CausalModel`, and the
hierarchical-equality causal model of the DAS paper (Geiger et al., arXiv 2303.02536).

Examples are sampled and evaluated in Python (samplers and variable functions are arbitrary
callables), but tensors are built once for the whole dataset rather than per example, so 1e5
examples take seconds.

Deliberate differences from the original implementation (fixes of its bugs):

* exactly ``size`` examples are returned (the original overshot to a multiple of
  ``batch_size``); consecutive groups of ``batch_size`` share one intervention, the last group
  may be shorter;
* ``input_function``/``output_function`` are honoured by the counterfactual generator too;
* the default counterfactual sampler is ``sample_input_tree_balanced`` (the original default,
  ``sample_input``, cannot take the ``output_var`` keywords and raised ``TypeError``); a sampler
  that takes no such keywords is called without them, the source then being unconstrained (the
  labels are exact either way: they come from ``run_interchange``);
* the factual ``filter`` sees the total setting (a superset of the sampled input, so input-only
  filters keep working and filters on intermediate variables now work too);
* ``seed`` reseeds ``model.rng`` so built-in samplers (and the hierarchical-equality sampler,
  which draws from ``model.rng``) are reproducible; rejection loops give up after ``max_tries``.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from .causal_model import CausalModel, CausalModelError, Setting, flatten_value

Example = dict[str, Any]
ToTensor = Callable[[Mapping[str, Any]], torch.Tensor]


def _column(settings: Sequence[Mapping[str, Any]], var: str) -> torch.Tensor:
    """``[n, features]`` float tensor of one variable; one C-level conversion when the values
    are Python scalars or flat tuples/lists of them, else per-value :func:`flatten_value`."""
    vals = [s[var] for s in settings]
    if isinstance(vals[0], (bool, int, float, tuple, list)):
        try:
            return torch.tensor(vals, dtype=torch.float32).reshape(len(vals), -1)
        except (TypeError, ValueError, RuntimeError):
            pass
    return torch.tensor([flatten_value(v) for v in vals], dtype=torch.float32)


def _rows(
    settings: Sequence[Mapping[str, Any]], variables: Sequence[str], fn: ToTensor | None, what: str
) -> torch.Tensor:
    """``[len(settings), ...]`` tensor: ``fn`` per setting, or the values of ``variables``
    concatenated (``[len(settings), features]`` float32)."""
    if fn is not None:
        return torch.stack([fn(s) for s in settings])
    try:
        return torch.cat([_column(settings, v) for v in variables], dim=1)
    except (ValueError, RuntimeError) as e:
        raise CausalModelError(
            f"{what} values of {list(variables)} flatten to different "
            "lengths across examples; pass a custom input/output function"
        ) from e


def _accepts_target(sampler: Callable[..., Setting]) -> bool:
    """Does ``sampler`` take ``output_var``/``output_var_value`` keywords?"""
    try:
        params = inspect.signature(sampler).parameters.values()
    except (TypeError, ValueError):
        return True
    names = {p.name for p in params}
    return (
        any(p.kind is p.VAR_KEYWORD for p in params) or {"output_var", "output_var_value"} <= names
    )


def _check_size(size: int, max_tries: int) -> None:
    if not isinstance(size, int) or size < 0:
        raise CausalModelError(f"size must be a non-negative int, got {size!r}")
    if max_tries < 1:
        raise CausalModelError(f"max_tries must be >= 1, got {max_tries!r}")


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
) -> list[Example]:
    """``size`` examples ``{"input_ids", "labels"}`` of the unintervened model.

    ``sampler()`` gives an input setting (default ``model.sample_input``); ``filter(total
    setting)`` rejects examples. Tensors: ``input_ids [n_input_features]`` and ``labels
    [n_output_features]`` (``model.input_to_tensor``/``output_to_tensor`` unless functions are
    given); with ``return_tensors=False`` the input dict and the total setting.
    """
    _check_size(size, max_tries)
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
    x = _rows(inputs, model.inputs, input_function, "input").to(device)
    y = _rows(totals, model.outputs, output_function, "output").to(device)
    return [{"input_ids": a, "labels": b} for a, b in zip(x.unbind(0), y.unbind(0))]


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
) -> list[Example]:
    """``size`` interchange-intervention examples, in groups of ``batch_size`` sharing one
    intervention ``{variable: value}`` from ``intervention_sampler`` (default
    ``model.sample_intervention``; ``filter(intervention)`` rejects).

    Per example: ``base = sampler()``; per intervened variable (model order) ``source =
    sampler(output_var=var, output_var_value=value)``. Fields: ``input_ids`` (base),
    ``source_input_ids [n_slots, ...]`` (sources packed in variable order, zero-padded to
    ``n_slots = max(#intermediate variables, largest intervention)``), ``labels`` (outputs of
    ``run_interchange(base, {var: source})``), ``base_labels`` (outputs of ``run_forward(base)``),
    ``intervention_id`` (``tensor([intervention_id(intervention)])``). With
    ``return_tensors=False``: dicts, sources padded with ``{}``, full settings as labels, and
    ``[id]``.
    """
    _check_size(size, max_tries)
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
    bases: list[Setting] = []
    sources: list[list[Setting]] = []
    labels: list[Setting] = []
    base_labels: list[Setting] = []
    ids: list[int] = []
    misses = 0
    while len(bases) < size:
        iv = intervention_sampler()
        model.check_names(iv)
        if filter is not None and not filter(iv):
            if (misses := misses + 1) >= max_tries:
                raise CausalModelError(f"filter rejected {max_tries} interventions in a row")
            continue
        misses = 0
        iid = intervention_id(iv)
        order = [v for v in model.variables if v in iv]
        for _ in range(min(batch_size, size - len(bases))):
            base = sampler()
            srcs = [
                sampler(output_var=v, output_var_value=iv[v]) if targeted else sampler()
                for v in order
            ]
            fixed = dict(base)
            for v, src in zip(order, srcs):
                fixed[v] = model.run_forward(src)[v]
            bases.append(base)
            sources.append(srcs)
            labels.append(model.run_forward(fixed))
            base_labels.append(model.run_forward(base))
            ids.append(iid)
    n_slots = max([len(model.intermediates)] + [len(s) for s in sources])
    if not return_tensors:
        return [
            {
                "input_ids": b,
                "source_input_ids": s + [{}] * (n_slots - len(s)),
                "labels": y,
                "base_labels": yb,
                "intervention_id": [i],
            }
            for b, s, y, yb, i in zip(bases, sources, labels, base_labels, ids)
        ]
    x = _rows(bases, model.inputs, input_function, "input")
    flat = [s for srcs in sources for s in srcs]
    src_rows = _rows(flat, model.inputs, input_function, "input") if flat else x[:0]
    src = torch.zeros((len(bases), n_slots) + tuple(x.shape[1:]), dtype=x.dtype)
    rows = torch.tensor([i for i, s in enumerate(sources) for _ in s], dtype=torch.long)
    slots = torch.tensor([j for s in sources for j in range(len(s))], dtype=torch.long)
    src[rows, slots] = src_rows.to(x.dtype)
    y = _rows(labels, model.outputs, output_function, "output")
    yb = _rows(base_labels, model.outputs, output_function, "output")
    iid = torch.tensor(ids, dtype=torch.long).unsqueeze(1)
    fields = {
        "input_ids": x,
        "source_input_ids": src,
        "labels": y,
        "base_labels": yb,
        "intervention_id": iid,
    }
    cols = {k: t.to(device).unbind(0) for k, t in fields.items()}
    return [{k: cols[k][n] for k in fields} for n in range(len(bases))]


def collate_examples(examples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a list of tensor examples into one batch ``{field: [n, ...]}``."""
    if not examples:
        raise CausalModelError("collate_examples needs at least one example")
    return {k: torch.stack([e[k] for e in examples]) for k in examples[0]}


# ---------------------------------------------------------------------- hierarchical equality
HIERARCHICAL_EQUALITY_CASES = {  # (W==X, Y==Z) -> entity pattern of W, X, Y, Z
    (False, False): "ABCD",
    (True, True): "AABB",
    (True, False): "AABC",
    (False, True): "ABCC",
}


def hierarchical_equality_causal_model(
    embedding_dim: int = 4, n_entities: int = 20, seed: int | None = 0
) -> tuple[CausalModel, Callable[..., Setting]]:
    """The DAS hierarchical-equality task: inputs W, X, Y, Z (entity vectors in [-1, 1]^d rounded
    to 2 decimals, as tuples), WX = (W==X), YZ = (Y==Z), O = (WX==YZ).

    Returns ``(model, sampler)``. ``values`` of the inputs is a pool of ``n_entities`` entities
    (so the model's own samplers and equivalence classes work); ``sampler(output_var=None,
    output_var_value=None)`` draws *fresh* distinct entities from ``model.rng`` in one of the
    four balanced cases ABCD, AABB, AABC, ABCC, restricted to those where ``output_var`` (WX, YZ
    or O) has the requested value; for an input ``output_var`` that entity is substituted.
    ``input_to_tensor`` gives the ``4 * embedding_dim`` input, ``output_to_tensor`` the label.
    """
    if embedding_dim < 1 or n_entities < 2:
        raise CausalModelError(
            f"need embedding_dim >= 1 and n_entities >= 2, got {embedding_dim}, {n_entities}"
        )
    model: CausalModel

    grid = [round(i / 100 - 1.0, 2) for i in range(201)]  # [-1, 1] in steps of 0.01
    d = embedding_dim

    pool_rng = random.Random(seed)
    pool = [
        tuple(round(pool_rng.uniform(-1.0, 1.0), 2) for _ in range(embedding_dim))
        for _ in range(n_entities)
    ]
    variables = ["W", "X", "Y", "Z", "WX", "YZ", "O"]
    values: dict[str, list[Any]] = {v: pool for v in "WXYZ"}
    values.update({"WX": [True, False], "YZ": [True, False], "O": [True, False]})
    parents = {
        "W": [],
        "X": [],
        "Y": [],
        "Z": [],
        "WX": ["W", "X"],
        "YZ": ["Y", "Z"],
        "O": ["WX", "YZ"],
    }
    functions: dict[str, Callable[..., Any]] = {v: (lambda: pool[0]) for v in "WXYZ"}
    functions.update(
        {"WX": lambda w, x: w == x, "YZ": lambda y, z: y == z, "O": lambda wx, yz: wx == yz}
    )
    pos = {
        "W": (0.2, 0),
        "X": (1, 0.1),
        "Y": (2, 0.2),
        "Z": (2.8, 0),
        "WX": (1, 2),
        "YZ": (2, 2),
        "O": (1.5, 3),
    }
    model = CausalModel(variables, values, parents, functions, pos=pos, seed=seed)
    cases = list(HIERARCHICAL_EQUALITY_CASES)

    def sampler(output_var: str | None = None, output_var_value: Any = None) -> Setting:
        """A balanced hierarchical-equality input with fresh entities."""
        allowed = cases
        if output_var in ("WX", "YZ", "O") and output_var_value is not None:
            k = {"WX": lambda c: c[0], "YZ": lambda c: c[1], "O": lambda c: c[0] == c[1]}
            allowed = [c for c in cases if k[output_var](c) == output_var_value]
        elif output_var is not None:
            model.check_names([output_var])
        pattern = HIERARCHICAL_EQUALITY_CASES[model.rng.choice(allowed)]
        fixed = output_var in ("W", "X", "Y", "Z") and output_var_value is not None
        while True:  # distinct entities keep the case's (in)equalities intact
            flat = model.rng.choices(grid, k=4 * d)  # uniform on the 2-decimal grid
            ents = {letter: tuple(flat[i * d : (i + 1) * d]) for i, letter in enumerate("ABCD")}
            if fixed:
                ents[pattern["WXYZ".index(output_var)]] = tuple(output_var_value)
            if len(set(ents.values())) == 4:
                break
        return {v: ents[c] for v, c in zip("WXYZ", pattern)}

    return model, sampler


def hierarchical_equality_intervention_id(intervention: Mapping[str, Any]) -> int:
    """0 = WX intervened, 1 = YZ, 2 = both (the DAS tutorial's convention)."""
    key = ("WX" in intervention, "YZ" in intervention)
    ids = {(True, False): 0, (False, True): 1, (True, True): 2}
    if key not in ids or set(intervention) - {"WX", "YZ"}:
        raise CausalModelError(
            f"intervention must be on WX and/or YZ only, got {sorted(intervention)}"
        )
    return ids[key]

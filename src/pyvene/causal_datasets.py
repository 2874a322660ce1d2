"""The public dataset API of causal models: the samplers and (counter)factual datasets of a
:class:`~pyvene.causal_model.CausalModel` (defined in :mod:`pyvene.causal_sampling`, re-exported
here) and the hierarchical-equality causal model of DAS (Geiger et al., arXiv 2303.02536).
This module sits above both :mod:`pyvene.causal_model` and :mod:`pyvene.causal_sampling`;
neither imports it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from .causal_model import CausalModel as CausalModel
from .causal_sampling import Example as Example
from .causal_sampling import ToTensor as ToTensor
from .causal_sampling import generate_counterfactual_dataset as generate_counterfactual_dataset
from .causal_sampling import generate_factual_dataset as generate_factual_dataset
from .causal_sampling import sample_input_tree_balanced as sample_input_tree_balanced
from .causal_values import CausalModelError as CausalModelError
from .causal_values import Setting as Setting
from .causal_values import flatten_value as flatten_value

# ---------------------------------------------------------------------- hierarchical equality
HIERARCHICAL_EQUALITY_CASES = {  # (W==X, Y==Z) -> which entity each of W, X, Y, Z is
    (False, False): "ABCD",
    (True, True): "AABB",
    (True, False): "AABC",
    (False, True): "ABCC",
}


def hierarchical_equality_causal_model(
    embedding_dim: int = 4, n_entities: int = 20, seed: int | None = 0
) -> tuple[CausalModel, Callable[..., Setting]]:
    """The DAS hierarchical-equality task: inputs W, X, Y, Z (entities: vectors in [-1, 1]^d on
    the 2-decimal grid, as tuples), WX = (W==X), YZ = (Y==Z), O = (WX==YZ).

    Returns ``(model, sampler)``. The inputs' ``values`` are a pool of ``n_entities`` entities
    (so the model's own samplers and equivalence classes work); ``sampler(output_var=None,
    output_var_value=None)`` draws *fresh* distinct entities from ``model.rng`` in one of the
    four cases ABCD, AABB, AABC, ABCC, uniformly among those where ``output_var`` (WX, YZ or O)
    has the requested value; an input ``output_var`` gets the requested entity. The model's
    ``input_to_tensor`` gives the ``4 * embedding_dim`` input, ``output_to_tensor`` the label.
    """
    if embedding_dim < 1 or n_entities < 2:
        raise CausalModelError(
            f"need embedding_dim >= 1, n_entities >= 2: {embedding_dim}, {n_entities}"
        )
    d = embedding_dim
    grid = [round(i / 100 - 1.0, 2) for i in range(201)]  # [-1, 1] in steps of 0.01
    pairs = [(a, b) for a in grid for b in grid]  # decode two grid digits per divmod

    def entities(rng: random.Random, k: int) -> list[tuple[float, ...]]:
        """``k`` uniform entities from one random integer (base-201 digits)."""
        code, flat = rng.randrange(201 ** (k * d)), ()
        for _ in range(k * d // 2):
            code, r = divmod(code, 40401)
            flat += pairs[r]
        flat += (grid[code],) if k * d % 2 else ()
        return [flat[i * d : (i + 1) * d] for i in range(k)]

    pool_rng, pool = random.Random(seed), []
    while len(pool) < n_entities:
        e = entities(pool_rng, 1)[0]
        pool += [] if e in pool else [e]
    values: dict[str, list[Any]] = {v: pool for v in "WXYZ"}
    values.update({"WX": [True, False], "YZ": [True, False], "O": [True, False]})
    parents = {v: [] for v in "WXYZ"} | {"WX": ["W", "X"], "YZ": ["Y", "Z"], "O": ["WX", "YZ"]}
    functions: dict[str, Callable[..., Any]] = {v: (lambda: pool[0]) for v in "WXYZ"}
    functions["WX"] = functions["YZ"] = functions["O"] = lambda a, b: a == b
    pos = {"W": (0, 0), "X": (1, 0), "Y": (2, 0), "Z": (3, 0)}
    pos |= {"WX": (0.5, 1), "YZ": (2.5, 1), "O": (1.5, 2)}
    model = CausalModel(list(parents), values, parents, functions, pos=pos, seed=seed)
    patterns = {
        c: tuple("ABCD".index(x) for x in p) for c, p in HIERARCHICAL_EQUALITY_CASES.items()
    }
    rule = {"WX": lambda c: c[0], "YZ": lambda c: c[1], "O": lambda c: c[0] == c[1]}

    def sampler(output_var: str | None = None, output_var_value: Any = None) -> Setting:
        """A balanced hierarchical-equality input with fresh distinct entities."""
        if output_var is not None:
            model.check_names([output_var])
        cases = list(patterns)  # (W==X, Y==Z) cases allowed by the request
        if output_var in rule and output_var_value is not None:
            if output_var_value not in (True, False):
                raise CausalModelError(f"{output_var} is True or False, got {output_var_value!r}")
            cases = [c for c in cases if rule[output_var](c) == output_var_value]
        fixed = output_var in ("W", "X", "Y", "Z") and output_var_value is not None
        p = patterns[model.rng.choice(cases)]
        while True:
            ents = entities(model.rng, 4)
            if fixed:
                ents[p["WXYZ".index(output_var)]] = tuple(output_var_value)
            if len(set(ents)) == 4:  # distinct, so the case's (in)equalities hold
                return {"W": ents[p[0]], "X": ents[p[1]], "Y": ents[p[2]], "Z": ents[p[3]]}

    return model, sampler


def hierarchical_equality_intervention_id(intervention: Mapping[str, Any]) -> int:
    """0 = WX intervened, 1 = YZ, 2 = both (the DAS tutorial's convention)."""
    ids = {("WX",): 0, ("YZ",): 1, ("WX", "YZ"): 2}
    key = tuple(sorted(intervention))
    if key not in ids:
        raise CausalModelError(f"intervention must be on WX and/or YZ, got {list(key)}")
    return ids[key]


__all__ = [
    "HIERARCHICAL_EQUALITY_CASES",
    "CausalModel",
    "CausalModelError",
    "Example",
    "Setting",
    "ToTensor",
    "flatten_value",
    "generate_counterfactual_dataset",
    "generate_factual_dataset",
    "hierarchical_equality_causal_model",
    "hierarchical_equality_intervention_id",
    "sample_input_tree_balanced",
]

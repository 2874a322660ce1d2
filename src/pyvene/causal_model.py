"""CausalModel: a small deterministic structural causal model over discrete variables.

It is the high-level ("algorithmic") side of interchange-intervention training and DAS: it says
what a network *should* output when a variable is fixed, or copied over from another input, so
(counter)factual datasets can be generated from it (see ``causal_datasets.py``).

Deliberate differences from the original implementation (fixes of its bugs):

* the caller's ``variables`` list is copied, never sorted in place; ``pos`` defaults to a fresh
  dict per instance (the original shared one mutable default across instances);
* validation raises :class:`CausalModelError` (a ``ValueError``) naming the bad value, the valid
  choices and the closest match, instead of ``assert`` (stripped under ``python -O``);
* timesteps are longest-path depths, cycles are reported instead of looping forever;
* ``sample_input_tree_balanced`` no longer shares one dict across calls (mutable default
  argument), picks only values that some input can produce, accepts an input variable as
  ``output_var``, and checks its result on DAGs whose parents share ancestors;
* samplers draw from ``self.rng`` (``random.Random(seed)``) and give up after ``max_tries``;
* ``find_live_paths`` omits empty lengths; ``start_variables`` and the no-op ``marginalize``
  are not provided.
"""

from __future__ import annotations

import difflib
import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .errors import PyveneError, choices_message

Setting = dict[str, Any]


class CausalModelError(PyveneError, ValueError):
    """A causal model, setting, value or sampler request is invalid."""


class UnknownVariableError(CausalModelError):
    """A variable name is not one of the model's variables."""


def _unknown_message(what: str, bad: object, choices: Sequence[str]) -> str:
    msg = choices_message(what, bad, choices)
    if "Did you mean" not in msg:  # difflib is case-sensitive: try a case-insensitive match
        near = difflib.get_close_matches(str(bad).lower(), [c.lower() for c in choices], 1, 0.4)
        if near:
            match = next(c for c in choices if c.lower() == near[0])
            msg += f" Did you mean {match!r}?"
    return msg


def same_value(a: Any, b: Any) -> bool:
    """Equality that also works for arrays and tensors (``a == b`` is elementwise there)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)


def flatten_value(value: Any) -> list[float]:
    """A variable's value as a flat list of floats (scalars become length 1)."""
    if isinstance(value, (bool, int, float, np.generic)):
        return [float(value)]
    if isinstance(value, torch.Tensor):
        return value.detach().flatten().float().tolist()
    if isinstance(value, (list, tuple)) and all(isinstance(x, (bool, int, float)) for x in value):
        return [float(x) for x in value]  # fast path for entity tuples
    return np.asarray(value, dtype=np.float64).ravel().tolist()


class CausalModel:
    """A deterministic causal model ``var = functions[var](*parents[var] values)``.

    ``values[var]`` is the sampling domain of ``var`` (used by samplers and equivalence classes;
    interventions may use other values, e.g. fresh entity vectors). Input variables (no
    parents) have zero-argument functions giving default values. ``variables`` are ordered by
    (timestep, name); ``inputs``/``outputs`` (variables that are nobody's parent) keep that
    order, which is also the layout of :meth:`input_to_tensor`/:meth:`output_to_tensor`.
    """

    def __init__(
        self,
        variables: Sequence[str],
        values: Mapping[str, Sequence[Any]],
        parents: Mapping[str, Sequence[str]],
        functions: Mapping[str, Callable[..., Any]],
        timesteps: Mapping[str, int] | None = None,
        equiv_classes: Mapping[str, Mapping[Any, list[Setting]]] | None = None,
        pos: Mapping[str, tuple[float, float]] | None = None,
        seed: int | None = None,
    ) -> None:
        self.values = {k: list(v) for k, v in values.items()}
        self.parents = {k: list(v) for k, v in parents.items()}
        self.functions = dict(functions)
        self._given_timesteps = None if timesteps is None else dict(timesteps)
        self.equiv_classes: dict[str, dict[Any, list[Setting]]] = dict(equiv_classes or {})
        self.pos = dict(pos or {})
        self.rng = random.Random(seed)
        self._build(list(variables))

    # ------------------------------------------------------------------ structure
    def _build(self, variables: list[str]) -> None:
        if not variables:
            raise CausalModelError("a CausalModel needs at least one variable")
        dupes = sorted({v for v in variables if variables.count(v) > 1})
        if dupes:
            raise CausalModelError(f"duplicate variable names {dupes}")
        names = sorted(variables)
        self._index = set(names)
        for table, what in (
            (self.values, "values"),
            (self.parents, "parents"),
            (self.functions, "functions"),
            (self.equiv_classes, "equiv_classes"),
            (self._given_timesteps or {}, "timesteps"),
        ):
            for key in table:
                if key not in self._index:
                    raise UnknownVariableError(
                        f"{what}: " + _unknown_message("variable", key, names)
                    )
        for var in names:
            for table, what in (
                (self.values, "values"),
                (self.parents, "parents"),
                (self.functions, "functions"),
            ):
                if var not in table:
                    raise CausalModelError(f"variable {var!r} has no entry in {what}")
            if not callable(self.functions[var]):
                raise CausalModelError(
                    f"functions[{var!r}] is not callable: {self.functions[var]!r}"
                )
            if len(self.values[var]) == 0:
                raise CausalModelError(
                    f"values[{var!r}] is empty; list the values {var!r} can take"
                )
            for p in self.parents[var]:
                if p not in self._index:
                    raise UnknownVariableError(
                        f"parents[{var!r}]: " + _unknown_message("variable", p, names)
                    )
            if var in self.parents[var] or len(set(self.parents[var])) != len(self.parents[var]):
                raise CausalModelError(
                    f"parents[{var!r}] = {self.parents[var]} repeats a "
                    "variable or contains the variable itself"
                )
        self.children = {v: [c for c in names if v in self.parents[c]] for v in names}
        self.timesteps, self.end_time = self.generate_timesteps(names)
        self.variables = sorted(names, key=lambda v: (self.timesteps[v], v))
        self.inputs = [v for v in self.variables if not self.parents[v]]
        self.outputs = [v for v in self.variables if not self.children[v]]
        self.intermediates = [v for v in self.variables if v not in self.inputs + self.outputs]
        self._plan = [(v, self.functions[v], tuple(self.parents[v])) for v in self.variables]
        self._balanced: dict[str, dict[Any, list[Setting]]] | None = None
        self._shared_ancestors = any(len(c) > 1 for c in self.children.values())
        setting: Setting = {}
        for var, fn, pars in self._plan:  # smoke test: defaults must evaluate
            try:
                setting[var] = fn(*[setting[p] for p in pars])
            except Exception as e:
                raise CausalModelError(
                    f"functions[{var!r}] failed on the default setting (parents {list(pars)}): "
                    f"{e!r}; input functions take no arguments, others one per parent"
                ) from e

    def generate_timesteps(
        self, variables: Sequence[str] | None = None
    ) -> tuple[dict[str, int], int]:
        """Timesteps (inputs 0, then longest-path depth; outputs at the final step) and the
        final step. Explicit timesteps are validated: parents strictly earlier than children."""
        variables = list(self.variables if variables is None else variables)
        if self._given_timesteps is not None:
            steps = dict(self._given_timesteps)
            missing = [v for v in variables if v not in steps]
            if missing:
                raise CausalModelError(f"timesteps given but missing for {missing}")
            for v in variables:
                late = [p for p in self.parents[v] if steps[p] >= steps[v]]
                if late:
                    raise CausalModelError(
                        f"timesteps: parents {late} of {v!r} are not strictly "
                        f"earlier than {v!r} (step {steps[v]})"
                    )
            return steps, max(steps.values())
        steps: dict[str, int] = {}
        pending = list(variables)
        while pending:
            ready = [v for v in pending if all(p in steps for p in self.parents[v])]
            if not ready:
                raise CausalModelError(f"the parent graph has a cycle among {sorted(pending)}")
            for v in ready:
                steps[v] = 1 + max((steps[p] for p in self.parents[v]), default=-1)
            pending = [v for v in pending if v not in steps]
        end = max(steps.values())
        for v in variables:
            if not self.children[v] and self.parents[v]:
                steps[v] = end
        return steps, end

    def add_variable(
        self,
        variable: str,
        values: Sequence[Any],
        parents: Sequence[str],
        children: Sequence[str],
        function: Callable[..., Any],
        timestep: int | None = None,
        child_functions: Mapping[str, Callable[..., Any]] | None = None,
    ) -> None:
        """Add ``variable`` and rebuild. Each child gets ``variable`` appended to its parents, so
        it needs a new function taking one more (last) argument: ``child_functions[child]``."""
        if variable in self._index:
            raise CausalModelError(f"variable {variable!r} already exists")
        self.check_names(list(parents) + list(children))
        child_functions = dict(child_functions or {})
        missing = [c for c in children if c not in child_functions]
        if missing:
            raise CausalModelError(
                f"children {missing} of new variable {variable!r} need "
                "child_functions (their parent list grows by one)"
            )
        if self._given_timesteps is not None and timestep is None:
            raise CausalModelError("this model has explicit timesteps; pass timestep=")
        old_variables = list(self.variables)
        backup = (
            dict(self.values),
            {k: list(v) for k, v in self.parents.items()},
            dict(self.functions),
            self._given_timesteps,
            dict(self.equiv_classes),
        )
        if self._given_timesteps is not None:
            self._given_timesteps = {**self._given_timesteps, variable: timestep}
        self.values[variable], self.parents[variable] = list(values), list(parents)
        self.functions[variable] = function
        for c in children:
            self.parents[c].append(variable)
            self.functions[c] = child_functions[c]
            self.equiv_classes.pop(c, None)
        try:
            self._build(self.variables + [variable])
        except CausalModelError:  # leave the model as it was
            (
                self.values,
                self.parents,
                self.functions,
                self._given_timesteps,
                self.equiv_classes,
            ) = backup
            self._build(old_variables)
            raise

    def check_names(self, names: Iterable[str]) -> None:
        """Raise :class:`UnknownVariableError` (with the closest match) for an unknown name."""
        for name in names:
            if name not in self._index:
                raise UnknownVariableError(_unknown_message("variable", name, self.variables))

    # ------------------------------------------------------------------ evaluation
    def run_forward(self, intervention: Mapping[str, Any] | None = None) -> Setting:
        """Evaluate every variable in order; variables in ``intervention`` are fixed to the given
        value (inputs or not), the others computed from their parents. Returns the total setting."""
        fixed = intervention or {}
        if not self._index.issuperset(fixed):
            self.check_names(fixed)
        setting: Setting = {}
        for var, fn, pars in self._plan:
            setting[var] = fixed[var] if var in fixed else fn(*[setting[p] for p in pars])
        return setting

    def run_interchange(
        self, input: Mapping[str, Any], source_interventions: Mapping[str, Mapping[str, Any]]
    ) -> Setting:
        """Counterfactual setting: run ``input`` with each variable ``v`` of
        ``source_interventions`` fixed to its value when running ``source_interventions[v]``."""
        self.check_names(source_interventions)
        fixed = dict(input)
        for var, source in source_interventions.items():
            fixed[var] = self.run_forward(source)[var]
        return self.run_forward(fixed)

    def generate_equiv_classes(self) -> dict[str, dict[Any, list[Setting]]]:
        """For every non-input variable not already present: ``{value: [parent assignments
        producing value]}``, enumerating the product of the parents' ``values``."""
        for var in self.variables:
            if var in self.inputs or var in self.equiv_classes:
                continue
            classes: dict[Any, list[Setting]] = {}
            try:
                classes = {val: [] for val in self.values[var]}
            except TypeError as e:
                raise CausalModelError(
                    f"values of {var!r} must be hashable for equivalence classes"
                ) from e
            pars = self.parents[var]
            for combo in itertools.product(*[self.values[p] for p in pars]):
                out = self.functions[var](*combo)
                if out not in classes:
                    raise CausalModelError(
                        f"functions[{var!r}]{combo} = {out!r} is not one of "
                        f"values[{var!r}] = {self.values[var]}"
                    )
                classes[out].append(dict(zip(pars, combo)))
            self.equiv_classes[var] = classes
        return self.equiv_classes

    def find_live_paths(self, intervention: Mapping[str, Any]) -> dict[int, list[list[str]]]:
        """``{length: paths}`` (length >= 2, empty lengths omitted) of variable chains in which
        every edge ``a -> b`` is an actual cause: some value of ``a`` changes ``b``."""
        actual = self.run_forward(intervention)
        live: dict[tuple[str, str], bool] = {}
        for a in self.variables:
            for b in self.children[a]:
                live[a, b] = any(
                    not same_value(self.run_forward({**intervention, a: val})[b], actual[b])
                    for val in self.values[a]
                )
        paths, frontier, length = {}, [[v] for v in self.variables], 2
        while True:
            frontier = [p + [c] for p in frontier for c in self.children[p[-1]] if live[p[-1], c]]
            if not frontier:
                return paths
            paths[length], length = frontier, length + 1

    # ------------------------------------------------------------------ samplers
    def sample_input(
        self, mandatory: Callable[[Setting], bool] | None = None, max_tries: int = 10_000
    ) -> Setting:
        """A uniform random input assignment whose total setting satisfies ``mandatory``."""
        for _ in range(max_tries):
            inp = {v: self.rng.choice(self.values[v]) for v in self.inputs}
            if mandatory is None or mandatory(self.run_forward(inp)):
                return inp
        raise CausalModelError(f"sample_input: no input satisfied `mandatory` in {max_tries} tries")

    def sample_intervention(
        self, mandatory: Callable[[Setting], bool] | None = None, max_tries: int = 10_000
    ) -> Setting:
        """A random non-empty ``{variable: value}`` over intermediate variables (each included
        with probability 1/2, uniform value) satisfying ``mandatory``."""
        if not self.intermediates:
            raise CausalModelError(
                "sample_intervention needs intermediate variables (neither "
                f"input nor output); variables: {self.variables}"
            )
        for _ in range(max_tries):
            iv = {
                v: self.rng.choice(self.values[v])
                for v in self.intermediates
                if self.rng.random() < 0.5
            }
            if iv and (mandatory is None or mandatory(iv)):
                return iv
        raise CausalModelError(f"sample_intervention: nothing accepted in {max_tries} tries")

    def _balanced_classes(self) -> dict[str, dict[Any, list[Setting]]]:
        """Equivalence classes restricted to parent values some input can produce."""
        if self._balanced is None:
            self.generate_equiv_classes()
            out: dict[str, dict[Any, list[Setting]]] = {}
            for var in self.variables:
                if var in self.inputs:
                    continue
                classes = {
                    val: [a for a in assigns if all(p in self.inputs or a[p] in out[p] for p in a)]
                    for val, assigns in self.equiv_classes[var].items()
                }
                out[var] = {val: a for val, a in classes.items() if a}
            self._balanced = out
        return self._balanced

    def sample_input_tree_balanced(
        self, output_var: str | None = None, output_var_value: Any = None, max_tries: int = 1_000
    ) -> Setting:
        """An input whose ``output_var`` (default: the single output) is ``output_var_value``
        (default: uniform over reachable values), choosing parent assignments uniformly from the
        equivalence classes top-down; inputs outside that tree are filled uniformly."""
        if output_var is None:
            if len(self.outputs) != 1:
                raise CausalModelError(f"several outputs {self.outputs}: pass output_var")
            output_var = self.outputs[0]
        self.check_names([output_var])
        if output_var in self.inputs:
            value = (
                self.rng.choice(self.values[output_var])
                if output_var_value is None
                else output_var_value
            )
            return {
                v: value if v == output_var else self.rng.choice(self.values[v])
                for v in self.inputs
            }
        classes = self._balanced_classes()
        if output_var_value is not None and output_var_value not in classes[output_var]:
            raise CausalModelError(
                f"{output_var}={output_var_value!r} cannot be produced by any "
                f"input; reachable values: {list(classes[output_var])}"
            )
        for _ in range(max_tries):
            value = (
                self.rng.choice(list(classes[output_var]))
                if output_var_value is None
                else output_var_value
            )
            inp: Setting = {}
            stack = [(output_var, value)]
            while stack:
                var, val = stack.pop()
                for p, pval in self.rng.choice(classes[var][val]).items():
                    if p in self.inputs:
                        inp[p] = pval
                    else:
                        stack.append((p, pval))
            for v in self.inputs:
                if v not in inp:
                    inp[v] = self.rng.choice(self.values[v])
            if not self._shared_ancestors or same_value(self.run_forward(inp)[output_var], value):
                return inp
        raise CausalModelError(
            f"sample_input_tree_balanced: no consistent input for "
            f"{output_var}={value!r} in {max_tries} tries"
        )

    # ------------------------------------------------------------------ filters
    def get_partial_filter(self, partial_setting: Mapping[str, Any]) -> Callable[[Setting], bool]:
        """Predicate: a total setting agrees with ``partial_setting``."""
        self.check_names(partial_setting)
        items = list(partial_setting.items())
        return lambda total: all(same_value(total[k], v) for k, v in items)

    def get_path_maxlen_filter(self, lengths: Iterable[int]) -> Callable[[Setting], bool]:
        """Predicate: the longest live path (1 if none) under the setting's inputs is in
        ``lengths``."""
        lengths = set(lengths)

        def check(total: Setting) -> bool:
            paths = self.find_live_paths({v: total[v] for v in self.inputs})
            return max(paths, default=1) in lengths

        return check

    def get_specific_path_filter(self, start: str, end: str) -> Callable[[Setting], bool]:
        """Predicate: some live path under the setting's inputs goes from ``start`` to ``end``."""
        self.check_names([start, end])

        def check(total: Setting) -> bool:
            paths = self.find_live_paths({v: total[v] for v in self.inputs})
            return any(p[0] == start and p[-1] == end for ps in paths.values() for p in ps)

        return check

    # ------------------------------------------------------------------ tensors
    def input_to_tensor(self, setting: Mapping[str, Any]) -> torch.Tensor:
        """Float tensor ``[n_input_features]``: input values concatenated in ``inputs`` order."""
        return torch.tensor([x for v in self.inputs for x in flatten_value(setting[v])])

    def output_to_tensor(self, setting: Mapping[str, Any]) -> torch.Tensor:
        """Float tensor ``[n_output_features]``: output values concatenated in ``outputs`` order."""
        return torch.tensor([x for v in self.outputs for x in flatten_value(setting[v])])

    # ------------------------------------------------------------------ datasets
    def generate_factual_dataset(
        self, size: int, *args: Any, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """See :func:`pyvene.causal_datasets.generate_factual_dataset`."""
        from .causal_datasets import generate_factual_dataset

        return generate_factual_dataset(self, size, *args, **kwargs)

    def generate_counterfactual_dataset(
        self,
        size: int,
        intervention_id: Callable[[Setting], int],
        batch_size: int,
        *args: Any,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """See :func:`pyvene.causal_datasets.generate_counterfactual_dataset`."""
        from .causal_datasets import generate_counterfactual_dataset

        return generate_counterfactual_dataset(
            self, size, intervention_id, batch_size, *args, **kwargs
        )

    # ------------------------------------------------------------------ drawing
    def print_structure(
        self,
        pos: Mapping[str, tuple[float, float]] | None = None,
        font: int = 12,
        node_size: int = 1000,
        show: bool = True,
    ) -> Any:
        """Draw the graph with matplotlib (imported lazily); returns the figure."""
        return self._draw({v: v for v in self.variables}, pos, font, node_size, show)

    def print_setting(
        self,
        total_setting: Mapping[str, Any],
        font: int = 12,
        node_size: int = 1000,
        show: bool = True,
    ) -> Any:
        """Draw the graph with each node labelled ``name=value``; returns the figure."""
        labels = {v: f"{v}={total_setting[v]}" if v in total_setting else v for v in self.variables}
        return self._draw(labels, None, font, node_size, show)

    def _draw(
        self,
        labels: Mapping[str, str],
        pos: Mapping[str, tuple[float, float]] | None,
        font: int,
        node_size: int,
        show: bool,
    ) -> Any:
        import matplotlib.pyplot as plt

        pos = dict(pos or self.pos)
        for t in range(self.end_time + 1):  # default layout: x = timestep, spread along y
            layer = [v for v in self.variables if self.timesteps[v] == t and v not in pos]
            for i, v in enumerate(layer):
                pos[v] = (float(t), i - (len(layer) - 1) / 2)
        fig, ax = plt.subplots()
        for a in self.variables:
            for b in self.children[a]:
                ax.annotate(
                    "",
                    xy=pos[b],
                    xytext=pos[a],
                    arrowprops={"arrowstyle": "->", "shrinkA": 15, "shrinkB": 15},
                )
        xs, ys = zip(*(pos[v] for v in self.variables))
        ax.scatter(xs, ys, s=node_size, c="lightblue", zorder=2)
        for v in self.variables:
            ax.annotate(labels[v], pos[v], ha="center", va="center", fontsize=font, zorder=3)
        ax.set_axis_off()
        if show:
            plt.show()
        return fig

"""CausalModel: a small deterministic structural causal model over discrete variables: the
high-level side of interchange-intervention training and DAS, saying what a network *should*
output when a variable is fixed or copied over from another input. Its samplers and
(counter)factual datasets live in :mod:`pyvene.causal_sampling` (methods here delegate to
them), the values and errors both share in :mod:`pyvene.causal_values`, and the public dataset
module with the DAS example model is :mod:`pyvene.causal_datasets`.

Fixes of the original's bugs: the caller's ``variables`` list is copied, not sorted in place;
``pos`` defaults to a fresh dict (the original shared one mutable default); validation raises
:class:`CausalModelError` (a ``ValueError``) naming the bad value, the valid choices and the
closest match instead of ``assert``; timesteps are longest-path depths and cycles are reported
instead of looping forever; ``add_variable`` rewires the children; samplers draw from
``self.rng`` (``random.Random(seed)``) and give up after ``max_tries``; ``find_live_paths``
omits empty lengths. ``start_variables`` (always empty) and the no-op ``marginalize`` are gone.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from .causal_sampling import (
    generate_counterfactual_dataset,
    generate_factual_dataset,
    sample_input_tree_balanced,
)
from .causal_values import CausalModelError as CausalModelError
from .causal_values import Setting as Setting
from .causal_values import UnknownVariableError as UnknownVariableError
from .causal_values import flatten_value as flatten_value
from .causal_values import same_value as same_value
from .causal_values import unknown_variable as unknown_variable

Positions = Mapping[str, tuple[float, float]]


class CausalModel:
    """A deterministic causal model: ``var = functions[var](*values of parents[var])``.

    ``values[var]`` is the sampling domain of ``var`` (samplers, equivalence classes); settings
    may hold other values (e.g. fresh entity vectors) since ``run_forward`` does not check them.
    Input variables (no parents) have zero-argument functions giving defaults. ``variables`` is
    ordered by (timestep, name); ``inputs``, ``intermediates`` and ``outputs`` (nobody's parent)
    keep that order, which is the layout of :meth:`input_to_tensor` / :meth:`output_to_tensor`.
    """

    def __init__(
        self,
        variables: Sequence[str],
        values: Mapping[str, Sequence[Any]],
        parents: Mapping[str, Sequence[str]],
        functions: Mapping[str, Callable[..., Any]],
        timesteps: Mapping[str, int] | None = None,
        equiv_classes: Mapping[str, Mapping[Any, list[Setting]]] | None = None,
        pos: Positions | None = None,
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

    def _build(self, variables: list[str]) -> None:
        """Validate the tables and derive children, timesteps, order and the evaluation plan."""
        names = sorted(variables)
        if not names or len(set(names)) != len(names):
            raise CausalModelError(f"variables must be non-empty and unique, got {variables}")
        self._index = set(names)
        tables = {"values": self.values, "parents": self.parents, "functions": self.functions}
        extra = {"equiv_classes": self.equiv_classes, "timesteps": self._given_timesteps or {}}
        for what, table in {**tables, **extra}.items():
            unknown = sorted(set(table) - self._index, key=list(table).index)
            if unknown:
                raise unknown_variable(unknown[0], names, f"{what}: ")
        for var in names:
            missing = [what for what, table in tables.items() if var not in table]
            if missing:
                raise CausalModelError(f"variable {var!r} has no entry in {missing}")
            pars = self.parents[var]
            for p in pars:
                if p not in self._index:
                    raise unknown_variable(p, names, f"parents[{var!r}]: ")
            if var in pars or len(set(pars)) != len(pars):
                raise CausalModelError(f"parents[{var!r}] = {pars} repeats a name or has {var!r}")
            if not callable(self.functions[var]) or not self.values[var]:
                raise CausalModelError(f"{var!r} needs a callable function and non-empty values")
        self.children = {v: [c for c in names if v in self.parents[c]] for v in names}
        self.timesteps, self.end_time = self.generate_timesteps(names)
        self.variables = sorted(names, key=lambda v: (self.timesteps[v], v))
        self.inputs = [v for v in self.variables if not self.parents[v]]
        self.outputs = [v for v in self.variables if not self.children[v]]
        self.intermediates = [v for v in self.variables if v not in self.inputs + self.outputs]
        self._plan = [(v, self.functions[v], tuple(self.parents[v])) for v in self.variables]
        self._balanced: dict[str, dict[Any, list[Setting]]] | None = None  # balanced_classes
        setting: Setting = {}
        for var, fn, pars in self._plan:  # smoke test: the defaults must evaluate
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
        """Timesteps (inputs 0, then longest-path depth, outputs at the final step) and the final
        step. Explicit timesteps are checked instead: parents strictly earlier than children."""
        variables = list(self.variables if variables is None else variables)
        if self._given_timesteps is not None:
            steps = dict(self._given_timesteps)
            for v in variables:
                if v not in steps:
                    raise CausalModelError(f"timesteps are given but miss {v!r}")
                late = [p for p in self.parents[v] if steps[p] >= steps[v]]
                if late:
                    raise CausalModelError(
                        f"timesteps: parents {late} of {v!r} are not earlier than step {steps[v]}"
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
        steps.update({v: end for v in variables if self.parents[v] and not self.children[v]})
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
        """Add ``variable`` and rebuild (unchanged model if that fails). Each child gets
        ``variable`` as its last parent and needs ``child_functions[child]`` taking one more
        argument (the original left them inconsistent). ``timestep``: for explicit timesteps."""
        if variable in self._index:
            raise CausalModelError(f"variable {variable!r} already exists")
        self.check_names([*parents, *children])
        child_functions = dict(child_functions or {})
        if set(child_functions) != set(children):
            raise CausalModelError(
                f"child_functions must cover exactly the children {list(children)} (their parent"
                f" lists grow by one), got {sorted(child_functions)}"
            )
        backup = (self.values, self.parents, self.functions, self._given_timesteps)
        old_classes, old_variables = self.equiv_classes, list(self.variables)
        self.values = {**self.values, variable: list(values)}
        self.parents = {k: list(v) for k, v in self.parents.items()} | {variable: list(parents)}
        self.functions = {**self.functions, variable: function, **child_functions}
        if self._given_timesteps is not None and timestep is not None:
            self._given_timesteps = {**self._given_timesteps, variable: timestep}
        self.equiv_classes = {k: v for k, v in self.equiv_classes.items() if k not in children}
        for c in children:
            self.parents[c].append(variable)
        try:
            self._build([*self.variables, variable])
        except CausalModelError:
            self.values, self.parents, self.functions, self._given_timesteps = backup
            self.equiv_classes = old_classes
            self._build(old_variables)
            raise

    def check_names(self, names: Iterable[str]) -> None:
        """Raise :class:`UnknownVariableError` (with the closest match) for an unknown name."""
        for name in names:
            if name not in self._index:
                raise unknown_variable(name, self.variables)

    # ------------------------------------------------------------------ evaluation
    def run_forward(self, intervention: Mapping[str, Any] | None = None) -> Setting:
        """The total setting: variables in ``intervention`` are fixed to the given value (inputs
        or not), the others computed from their parents, in timestep order."""
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
        """The counterfactual setting: run ``input`` with each variable ``v`` of
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
            classes: dict[Any, list[Setting]] = {val: [] for val in self.values[var]}
            pars = self.parents[var]
            for combo in itertools.product(*[self.values[p] for p in pars]):
                out = self.functions[var](*combo)
                if out not in classes:
                    raise CausalModelError(
                        f"functions[{var!r}]{combo} = {out!r} is not in values[{var!r}] = "
                        f"{self.values[var]}"
                    )
                classes[out].append(dict(zip(pars, combo)))
            self.equiv_classes[var] = classes
        return self.equiv_classes

    def balanced_classes(self) -> dict[str, dict[Any, list[Setting]]]:
        """:meth:`generate_equiv_classes` restricted to parent values that some input can
        produce (computed once; the tree-balanced sampler draws from it)."""
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

    def find_live_paths(self, intervention: Mapping[str, Any]) -> dict[int, list[list[str]]]:
        """``{length: paths}`` (length >= 2, empty lengths omitted) of variable chains in which
        every edge ``a -> b`` is an actual cause: some value of ``a`` changes ``b``."""
        actual = self.run_forward(intervention)
        live = {
            (a, b): any(
                not same_value(self.run_forward({**intervention, a: val})[b], actual[b])
                for val in self.values[a]
            )
            for a in self.variables
            for b in self.children[a]
        }
        paths, frontier = {}, [[v] for v in self.variables]
        while True:
            frontier = [p + [c] for p in frontier for c in self.children[p[-1]] if live[p[-1], c]]
            if not frontier:
                return paths
            paths[len(frontier[0])] = frontier

    # ------------------------------------------------------------------ sampling and data
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
        """A random non-empty ``{variable: value}`` over the intermediate variables (each included
        with probability 1/2, uniform value) satisfying ``mandatory``."""
        if not self.intermediates:
            raise CausalModelError(
                f"sample_intervention needs intermediate variables; variables: {self.variables}"
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

    def sample_input_tree_balanced(
        self, output_var: str | None = None, output_var_value: Any = None, max_tries: int = 1_000
    ) -> Setting:
        """Input with ``output_var`` = ``output_var_value`` (both uniform if None); see
        :func:`pyvene.causal_datasets.sample_input_tree_balanced`."""
        return sample_input_tree_balanced(self, output_var, output_var_value, max_tries)

    def get_partial_filter(self, partial_setting: Mapping[str, Any]) -> Callable[[Setting], bool]:
        """Predicate: a total setting agrees with ``partial_setting``."""
        self.check_names(partial_setting)
        items = list(partial_setting.items())
        return lambda total: all(same_value(total[k], v) for k, v in items)

    def get_path_maxlen_filter(self, lengths: Iterable[int]) -> Callable[[Setting], bool]:
        """Predicate: the longest live path (1 if none) under the setting's inputs is in
        ``lengths`` (the original crashed when there was none)."""
        lengths = set(lengths)
        return lambda total: max(self._input_live_paths(total), default=1) in lengths

    def get_specific_path_filter(self, start: str, end: str) -> Callable[[Setting], bool]:
        """Predicate: a live path under the setting's inputs goes from ``start`` to ``end``."""
        self.check_names([start, end])
        ends = (start, end)
        return lambda total: any(
            (p[0], p[-1]) == ends for ps in self._input_live_paths(total).values() for p in ps
        )

    def _input_live_paths(self, total: Mapping[str, Any]) -> dict[int, list[list[str]]]:
        return self.find_live_paths({v: total[v] for v in self.inputs})

    def input_to_tensor(self, setting: Mapping[str, Any]) -> torch.Tensor:
        """Float tensor ``[n_input_features]``: input values concatenated in ``inputs`` order."""
        return torch.tensor([x for v in self.inputs for x in flatten_value(setting[v])])

    def output_to_tensor(self, setting: Mapping[str, Any]) -> torch.Tensor:
        """Float tensor ``[n_output_features]``: output values concatenated in ``outputs`` order."""
        return torch.tensor([x for v in self.outputs for x in flatten_value(setting[v])])

    def generate_factual_dataset(self, size: int, *args: Any, **kwargs: Any) -> Any:
        """See :func:`pyvene.causal_datasets.generate_factual_dataset`."""
        return generate_factual_dataset(self, size, *args, **kwargs)

    def generate_counterfactual_dataset(
        self,
        size: int,
        intervention_id: Callable[[Setting], int],
        batch_size: int,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """See :func:`pyvene.causal_datasets.generate_counterfactual_dataset`."""
        return generate_counterfactual_dataset(
            self, size, intervention_id, batch_size, *args, **kwargs
        )

    # ------------------------------------------------------------------ drawing
    def print_structure(
        self, pos: Positions | None = None, font: int = 12, node_size: int = 1000, show: bool = True
    ) -> Any:
        """Draw the graph with matplotlib (imported lazily); returns the figure."""
        return self._draw({v: v for v in self.variables}, pos, font, node_size, show)

    def print_setting(
        self, total_setting: Setting, font: int = 12, node_size: int = 1000, show: bool = True
    ) -> Any:
        """Draw the graph with each node labelled ``name=value``; returns the figure."""
        labels = {v: f"{v}={total_setting[v]}" if v in total_setting else v for v in self.variables}
        return self._draw(labels, None, font, node_size, show)

    def _draw(self, labels: Mapping[str, str], pos: Any, font: int, size: int, show: bool) -> Any:
        import matplotlib.pyplot as plt

        pos = dict(pos or self.pos)
        for t in range(self.end_time + 1):  # default layout: x = timestep, spread along y
            layer = [v for v in self.variables if self.timesteps[v] == t and v not in pos]
            pos.update({v: (float(t), i - (len(layer) - 1) / 2) for i, v in enumerate(layer)})
        fig, ax = plt.subplots()
        arrow = {"arrowstyle": "->", "shrinkA": 15, "shrinkB": 15}
        for a, b in ((p, c) for p in self.variables for c in self.children[p]):
            ax.annotate("", xy=pos[b], xytext=pos[a], arrowprops=arrow)
        ax.scatter(*zip(*(pos[v] for v in self.variables)), s=size, c="lightblue", zorder=2)
        for v in self.variables:
            ax.annotate(labels[v], pos[v], ha="center", va="center", fontsize=font, zorder=3)
        ax.set_axis_off()
        if show:
            plt.show()
        return fig

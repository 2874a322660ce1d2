"""Causal models and labels written out by hand, independently of pyvene's builders, for the
CausalModel and causal-dataset tests."""

from __future__ import annotations

import torch

from pyvene.causal_model import CausalModel

T, F = True, False


def and_model(**kwargs) -> CausalModel:
    """A, B inputs (defaults True), C = A and B."""
    values = {"A": [F, T], "B": [F, T], "C": [F, T]}
    parents = {"A": [], "B": [], "C": ["A", "B"]}
    functions = {"A": lambda: T, "B": lambda: T, "C": lambda a, b: a and b}
    return CausalModel(["C", "B", "A"], values, parents, functions, **kwargs)


def equality_model_by_hand(pool: list[tuple[float, ...]]) -> CausalModel:
    """The hierarchical equality model written out independently of the library builder."""
    variables = ["W", "X", "Y", "Z", "WX", "YZ", "O"]
    values = {v: pool for v in "WXYZ"} | {v: [T, F] for v in ("WX", "YZ", "O")}
    parents = {"W": [], "X": [], "Y": [], "Z": [], "WX": ["W", "X"], "YZ": ["Y", "Z"]}
    parents["O"] = ["WX", "YZ"]
    functions = {v: (lambda: pool[0]) for v in "WXYZ"}
    functions.update({"WX": lambda w, x: w == x, "YZ": lambda y, z: y == z})
    functions["O"] = lambda wx, yz: wx == yz
    return CausalModel(variables, values, parents, functions)


def label_by_hand(base: dict, src_wx: dict | None = None, src_yz: dict | None = None) -> bool:
    """(W==X) == (Y==Z), with WX / YZ taken from the sources when given."""
    wx = (src_wx or base)["W"] == (src_wx or base)["X"]
    yz = (src_yz or base)["Y"] == (src_yz or base)["Z"]
    return wx == yz


def chunks(row: torch.Tensor, d: int = 4) -> dict:
    """Decode a 16-dim float32 input row back into the four entities (2 decimals)."""
    return {
        v: tuple(round(c, 2) for c in row[i * d : (i + 1) * d].tolist())
        for i, v in enumerate("WXYZ")
    }

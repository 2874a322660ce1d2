"""HookSession: installs forward (pre-)hooks for one pass, owns their handles and removes them
in ``finally`` (also when the forward raises), so the wrapped model is left untouched and
hooks a user installed are never removed. Adapters read and replace the hooked tensor in
tensor / tuple / ModelOutput outputs and positional / keyword inputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

TensorFn = Callable[[torch.Tensor], torch.Tensor | None]


class StopForward(Exception):
    """Raised by a getter once every activation a source pass needs has been read."""


def _first_tensor_of_output(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)):
        return output[0]
    if isinstance(output, dict):  # ModelOutput included
        return next(iter(output.values()))
    raise TypeError(f"cannot find a tensor in a module output of type {type(output).__name__}")


def _replace_output(output: Any, new: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return new
    if isinstance(output, tuple):
        return (new, *output[1:])
    if isinstance(output, list):
        return [new, *output[1:]]
    key = next(iter(output.keys()))
    output[key] = new
    return output


def _input_key(args: tuple, kwargs: dict) -> int | str:
    if args:
        return 0
    if "hidden_states" in kwargs:
        return "hidden_states"
    if not kwargs:
        raise TypeError("hooked module was called without arguments")
    return next(iter(kwargs))


class HookSession:
    """Context manager for the hooks of one forward pass.

    ``on_output(module, fn)`` / ``on_input(module, fn)``: ``fn(tensor)`` returns a
    replacement tensor or None (read only). Hooks on one module run in install order, each
    seeing the previous one's result.
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []

    def on_output(self, module: nn.Module, fn: TensorFn, with_input: bool = False) -> None:
        """``with_input``: call ``fn(output_tensor, input_tensor)`` (adaptor-style hooks)."""

        def hook(mod, args, kwargs, output):
            out = _first_tensor_of_output(output)
            if with_input:
                key = _input_key(args, kwargs)
                new = fn(out, args[key] if key == 0 else kwargs[key])
            else:
                new = fn(out)
            return None if new is None else _replace_output(output, new)

        self._handles.append(module.register_forward_hook(hook, with_kwargs=True))

    def on_input(self, module: nn.Module, fn: TensorFn) -> None:
        def hook(mod, args, kwargs):
            key = _input_key(args, kwargs)
            new = fn(args[key] if key == 0 else kwargs[key])
            if new is None:
                return None
            if key == 0:
                return (new, *args[1:]), kwargs
            kwargs = dict(kwargs)
            kwargs[key] = new
            return args, kwargs

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def on(self, module: nn.Module, side: str, fn: TensorFn, with_input: bool = False) -> None:
        if side == "input":
            self.on_input(module, fn)
        else:
            self.on_output(module, fn, with_input)

    def remove(self) -> None:
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()

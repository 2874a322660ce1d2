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


class Side(str):
    """A hook side, ``"input"`` or ``"output"`` (it compares and prints as that string), that
    may carry ``tokens_from``: a module whose first input is ``(B, S, D)`` and inside which
    the hooked module runs on token-flattened ``(B * S, W)`` tensors (OPT's fc1 /
    activation_fn / fc2 see ``hidden.reshape(-1, D)``). :meth:`HookSession.on` then records
    ``(B, S)`` when ``tokens_from`` starts, hands the hook function ``(B, S, W)`` views and
    flattens its result back, so position units, gather / scatter and sweeps work unchanged.
    It travels in ``HookSite.hook`` so every ``session.on(site.module, site.hook, fn)`` call
    gets the view, while a module path to the same module keeps the raw tensor.
    """

    tokens_from: nn.Module | None

    def __new__(cls, side: str, tokens_from: nn.Module | None = None) -> Side:
        obj = super().__new__(cls, side)
        obj.tokens_from = tokens_from
        return obj


class HookSession:
    """Context manager for the hooks of one forward pass.

    ``on_output(module, fn)`` / ``on_input(module, fn)``: ``fn(tensor)`` returns a
    replacement tensor or None (read only). Hooks on one module run in install order, each
    seeing the previous one's result. ``on_exit(fn)`` runs ``fn()`` after the hooks are
    removed, only when the block ended without an exception (e.g. a recurrent hook checks how
    many timesteps ran once the forward is over).
    """

    def __init__(self) -> None:
        self._handles: list[Any] = []
        self._token_shapes: dict[int, dict[str, torch.Size]] = {}  # see _token_view
        self._on_exit: list[Callable[[], None]] = []

    def on_exit(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when the session closes after a forward that did not raise."""
        self._on_exit.append(fn)

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
        tokens_from = getattr(side, "tokens_from", None)
        if tokens_from is not None:
            fn = self._token_view(tokens_from, fn)
        if side == "input":
            self.on_input(module, fn)
        else:
            self.on_output(module, fn, with_input)

    def _token_view(self, tokens_from: nn.Module, fn: TensorFn) -> TensorFn:
        """``fn`` on ``(B, S, W)`` views of ``(B * S, W)`` tensors; ``(B, S)`` is read from
        ``tokens_from``'s first input by a pre-hook this session owns (one per module)."""
        lead = self._token_shapes.get(id(tokens_from))
        if lead is None:
            lead = self._token_shapes[id(tokens_from)] = {}

            def probe(mod, args, kwargs):
                key = _input_key(args, kwargs)
                lead["shape"] = (args[key] if key == 0 else kwargs[key]).shape[:-1]

            handle = tokens_from.register_forward_pre_hook(probe, with_kwargs=True)
            self._handles.append(handle)

        def unflat(t: torch.Tensor) -> torch.Tensor:
            shape = lead.get("shape")
            if shape is None:
                raise RuntimeError(
                    f"token-flattened hook: {type(tokens_from).__name__}, which gives the "
                    "(batch, seq) shape, did not run before the hooked module"
                )
            if t.dim() != 2:  # already (B, S, W): nothing to undo
                return t
            if t.shape[0] != shape.numel():
                raise RuntimeError(
                    f"token-flattened hook: expected {shape.numel()} = {tuple(shape)} tokens, "
                    f"got a tensor of shape {tuple(t.shape)}"
                )
            return t.unflatten(0, shape)

        def wrapped(x: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor | None:
            new = fn(unflat(x), *(unflat(r) for r in rest))
            return None if new is None else new.reshape(x.shape)

        return wrapped

    def remove(self) -> None:
        self._token_shapes.clear()
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSession:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.remove()
        finishers, self._on_exit = self._on_exit, []
        if exc_type is None:
            for fn in finishers:
                fn()

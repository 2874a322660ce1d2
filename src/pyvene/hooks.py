"""HookSession: the hooks of one call, acting only for the thread (and call) that opened it.

Why: hooks on a shared model fire for every thread's forward, so two threads calling one model
(or a plain ``model(...)`` in another thread) would run each other's interventions; and a fresh
hook closure per call makes ``torch.compile`` recompile every call. So each (module, side) gets
ONE stable, module-level dispatcher hook (installed while some session uses it, reference
counted across threads, removed by the last user), and the per-call functions live in the
session, which is found through a context variable: a forward in a thread (or context) with no
open session runs no pyvene code beyond one lookup. The dispatchers are hidden from dynamo
(``torch.compiler.disable``, only once dynamo is imported), so compiled graphs never guard on
per-call Python objects. Sessions remove what they installed in ``finally`` (also when the
forward raises); hooks a user installed are never touched. Adapters read and replace the hooked
tensor in tensor / tuple / ModelOutput outputs and positional / keyword inputs. A module that
only runs under some model setting (GPT-2's ``attn_dropout``) has a context registered with
:func:`prepare_when_hooked`, entered while a session hooks it."""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

TensorFn = Callable[[torch.Tensor], torch.Tensor | None]

# the sessions open in this thread / context, in the order they were entered
_OPEN: ContextVar[tuple[HookSession, ...]] = ContextVar("pyvene_hook_sessions", default=())
_LOCK = threading.Lock()
# (module, side) -> [handle, number of sessions using it]; an entry exists only while used
_INSTALLED: dict[tuple[nn.Module, str], list[Any]] = {}
# module -> a factory of the context a session enters while it hooks that module
_PREPARE: weakref.WeakKeyDictionary[nn.Module, Callable[[], AbstractContextManager]] = (
    weakref.WeakKeyDictionary()
)


def prepare_when_hooked(module: nn.Module, factory: Callable[[], AbstractContextManager]) -> None:
    """Enter ``factory()`` while a session hooks ``module`` (from its first hook on it until
    the session closes, also when the forward raises): for a module the model only calls under
    some setting, e.g. GPT-2's ``attn_dropout`` (:mod:`pyvene.families.gpt2_attention`)."""
    _PREPARE[module] = factory


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


def _dispatch_output(mod: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
    """The one forward hook of every hooked module: runs the open sessions' functions."""
    sessions = _OPEN.get()
    if not sessions:
        return None
    changed = False
    for session in sessions:
        for fn, with_input in session._fns.get((mod, "output"), ()):
            out = _first_tensor_of_output(output)
            if with_input:
                key = _input_key(args, kwargs)
                new = fn(out, args[key] if key == 0 else kwargs[key])
            else:
                new = fn(out)
            if new is not None:
                output, changed = _replace_output(output, new), True
    return output if changed else None


def _dispatch_input(mod: nn.Module, args: tuple, kwargs: dict) -> Any:
    """The one forward pre-hook of every hooked module (``"call"`` functions take no tensor)."""
    sessions = _OPEN.get()
    if not sessions:
        return None
    changed = False
    for session in sessions:
        for fn, mode in session._fns.get((mod, "input"), ()):
            if mode == "call":
                fn()
                continue
            if mode == "args":
                got = fn(args, kwargs)
                if got is not None:
                    (args, kwargs), changed = got, True
                continue
            key = _input_key(args, kwargs)
            new = fn(args[key] if key == 0 else kwargs[key])
            if new is None:
                continue
            if key == 0:
                args = (new, *args[1:])
            else:
                kwargs = {**kwargs, key: new}
            changed = True
    return (args, kwargs) if changed else None


_HIDDEN: dict[str, Callable[..., Any]] = {}


def _dispatcher(side: str) -> Callable[..., Any]:
    """The stable hook function for ``side``; hidden from dynamo once dynamo is imported (its
    import costs seconds, and nothing compiles before it is imported)."""
    plain = _dispatch_output if side == "output" else _dispatch_input
    if "torch._dynamo" not in sys.modules:
        return plain
    hidden = _HIDDEN.get(side)
    if hidden is None:
        hidden = _HIDDEN[side] = torch.compiler.disable(plain)
    return hidden


def _acquire(module: nn.Module, side: str) -> None:
    with _LOCK:
        entry = _INSTALLED.get((module, side))
        if entry is None:
            if side == "output":
                handle = module.register_forward_hook(_dispatcher(side), with_kwargs=True)
            else:
                handle = module.register_forward_pre_hook(_dispatcher(side), with_kwargs=True)
            _INSTALLED[(module, side)] = [handle, 1]
        else:
            entry[1] += 1


def _release(module: nn.Module, side: str) -> None:
    with _LOCK:
        entry = _INSTALLED[(module, side)]
        entry[1] -= 1
        if entry[1] == 0:
            del _INSTALLED[(module, side)]
            entry[0].remove()


def open_sessions() -> tuple[HookSession, ...]:
    """The sessions open in the calling thread (context), outermost first."""
    return _OPEN.get()


class HookSession:
    """Context manager for the hooks of one call; they act only inside its ``with`` block and
    only in the thread that entered it.

    ``on_output(module, fn)`` / ``on_input(module, fn)``: ``fn(tensor)`` returns a
    replacement tensor or None (read only). ``on_call(module, fn)``: ``fn()`` before each
    forward of ``module``. Functions on one module run in install order, each seeing the
    previous one's result (sessions open in one thread: in the order they were entered).
    ``on_pre_forward(module, fn)``: ``fn(args, kwargs)`` with the module's whole call (e.g. to
    keep an attention module's arguments for a rerun). ``on_exit(fn)`` runs ``fn()`` after the
    hooks are removed, only when the block ended without an exception (e.g. a recurrent hook
    checks how many timesteps ran).

    Every function goes through the module's shared dispatcher, so it is thread-scoped and
    removed when the block exits (also when the forward raises); there is no way to hand a
    raw torch hook handle to a session. Backward hooks are not offered: autograd runs them
    in its own threads, outside the session's context.
    """

    def __init__(self) -> None:
        self._fns: dict[tuple[nn.Module, str], list[tuple[Callable[..., Any], Any]]] = {}
        self._token_shapes: dict[int, dict[str, torch.Size]] = {}  # see _token_view
        self._on_exit: list[Callable[[], None]] = []
        self._token: Any = None
        self._prepared = ExitStack()  # contexts of prepare_when_hooked, one per module

    def _add(self, module: nn.Module, side: str, fn: Callable[..., Any], flag: Any) -> None:
        fns = self._fns.get((module, side))
        if fns is None:
            if module in _PREPARE and not any(m is module for m, _ in self._fns):
                self._prepared.enter_context(_PREPARE[module]())
            _acquire(module, side)
            fns = self._fns[(module, side)] = []
        fns.append((fn, flag))

    def on_exit(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` when the session closes after a forward that did not raise."""
        self._on_exit.append(fn)

    def on_output(self, module: nn.Module, fn: TensorFn, with_input: bool = False) -> None:
        """``with_input``: call ``fn(output_tensor, input_tensor)`` (adaptor-style hooks)."""
        self._add(module, "output", fn, with_input)

    def on_input(self, module: nn.Module, fn: TensorFn) -> None:
        self._add(module, "input", fn, "tensor")

    def on_call(self, module: nn.Module, fn: Callable[[], None]) -> None:
        """``fn()`` before every forward of ``module`` in this session (e.g. step counting)."""
        self._add(module, "input", fn, "call")

    def on_pre_forward(
        self, module: nn.Module, fn: Callable[[tuple, dict], tuple[tuple, dict] | None]
    ) -> None:
        """``fn(args, kwargs)`` before every forward of ``module`` in this session, with the
        positional and keyword arguments of the call; it returns ``(args, kwargs)`` to
        replace them, or None (read only)."""
        self._add(module, "input", fn, "args")

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

            def probe(t: torch.Tensor) -> None:
                lead["shape"] = t.shape[:-1]

            self.on_input(tokens_from, probe)

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
        """Forget this session's functions and release its dispatchers (idempotent)."""
        self._token_shapes.clear()
        fns, self._fns = self._fns, {}
        try:
            for module, side in fns:
                _release(module, side)
        finally:
            self._prepared.close()

    def __enter__(self) -> HookSession:
        self._token = _OPEN.set((*_OPEN.get(), self))
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        try:
            self.remove()
        finally:
            token, self._token = self._token, None
            try:
                if token is not None:
                    _OPEN.reset(token)
            except (ValueError, RuntimeError):  # closed out of order or in another context
                _OPEN.set(tuple(s for s in _OPEN.get() if s is not self))
        finishers, self._on_exit = self._on_exit, []
        if exc_type is None:
            for fn in finishers:
                fn()


def is_compiled(model: nn.Module, deep: bool = True) -> bool:
    """True for ``torch.compile(model)`` wrappers and models compiled in place
    (``model.compile()``); ``deep``: also when only a submodule is
    (``model.layers[0].compile()``)."""
    if "torch._dynamo" not in sys.modules:
        return False
    from torch._dynamo.eval_frame import OptimizedModule

    return any(
        isinstance(m, OptimizedModule) or getattr(m, "_compiled_call_impl", None) is not None
        for m in (model.modules() if deep else (model,))
    )


def hold_dispatchers(owner: object, pairs: list[tuple[nn.Module, str]]) -> bool:
    """Keep the dispatchers of ``pairs`` ((module, side)) installed while ``owner`` lives;
    True when one of them was not installed before (see :func:`forget_compiled_code`).

    Why: a compiled graph calls the hooks that were installed when it was traced (dynamo does
    not guard on module hooks by default), so on a compiled model the (inert outside calls)
    dispatchers must already be there when a plain call triggers the compile."""
    pairs = list(dict.fromkeys(pairs))
    with _LOCK:
        new = any(pair not in _INSTALLED for pair in pairs)
    for module, side in pairs:
        _acquire(module, side)
    weakref.finalize(owner, _release_all, pairs)
    return new


def forget_compiled_code() -> None:
    """Drop dynamo's compiled code (``torch._dynamo.reset_code_caches()``: every compiled
    frame recompiles on its next call; counters, configs and other state are kept).

    Why: a model compiled and run before the dispatchers were installed keeps calling a graph
    traced without them, and dynamo does not notice the new hooks (it does not guard on
    module hooks), so interventions would silently do nothing. Code compiled for another
    model is dropped as well (dynamo's caches are per code object, shared by every module of
    a class): it costs that model one recompile, never a wrong result."""
    if "torch._dynamo" not in sys.modules:
        return
    import torch._dynamo as dynamo

    reset = getattr(dynamo, "reset_code_caches", None) or torch.compiler.reset
    reset()


def _release_all(pairs: list[tuple[nn.Module, str]]) -> None:
    for module, side in pairs:
        _release(module, side)


def dispatch_pairs(model: nn.Module, slots: list[Any]) -> list[tuple[nn.Module, str]]:
    """Every (module, side) a call on ``slots`` may hook: sites (their input too for
    input-reading sources), token-shape probes, and the model itself (generate's step count)."""
    pairs: list[tuple[nn.Module, str]] = [(model, "input")]
    for slot in slots:
        side = slot.site.hook
        pairs.append((slot.site.module, str(side)))
        if getattr(slot.intervention, "source_from_input", False):
            pairs.append((slot.site.module, "input"))
        tokens_from = getattr(side, "tokens_from", None)
        if tokens_from is not None:
            pairs.append((tokens_from, "input"))
    return pairs

"""pyvene.hooks.HookSession on a two-layer module: functions on one module compose in install
order (compared with the same arithmetic done by hand), and every hook the session installed is
gone when it closes, also when the forward raises, while hooks the user installed stay and run.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pyvene.hooks import HookSession, open_sessions


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(3, 3)
        self.b = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def hook_counts(net: Net) -> list[int]:
    return [
        len(m._forward_hooks) + len(m._forward_pre_hooks) for m in (net, net.a, net.b)
    ]  # torch's own registries: the only way to see what is installed


@pytest.fixture
def net() -> Net:
    return Net()


X = torch.arange(6, dtype=torch.float32).view(2, 3)


def test_output_functions_on_one_module_compose_in_install_order(net):
    with torch.no_grad():
        want = net.b((net.a(X) + 1) * 2)  # by hand: +1 first, then *2
        with HookSession() as session:
            session.on_output(net.a, lambda y: y + 1)
            session.on_output(net.a, lambda y: y * 2)
            got = net(X)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_input_functions_compose_in_order_and_read_only_functions_change_nothing(net):
    seen = []
    with torch.no_grad():
        want = net.b(net.a(X) * 3 - 1)
        with HookSession() as session:
            session.on_input(net.b, lambda x: x * 3)
            session.on_input(net.b, lambda x: seen.append(x.clone()))  # returns None: reads
            session.on_input(net.b, lambda x: x - 1)
            got = net(X)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(seen[0], net.a(X).detach() * 3, rtol=0, atol=0)


def test_nested_sessions_run_outer_first(net):
    with torch.no_grad():
        want = net.b(net.a(X) * 2 + 5)
        with HookSession() as outer:
            outer.on_output(net.a, lambda y: y * 2)
            with HookSession() as inner:
                inner.on_output(net.a, lambda y: y + 5)
                assert open_sessions() == (outer, inner)
                got = net(X)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert open_sessions() == ()


def test_on_call_runs_before_each_forward_and_on_exit_after_a_clean_block(net):
    events = []
    with HookSession() as session:
        session.on_call(net.a, lambda: events.append("call"))
        session.on_exit(lambda: events.append("exit"))
        net(X)
        net(X)
        assert events == ["call", "call"]
    assert events == ["call", "call", "exit"]


def test_hooks_are_removed_on_exit_and_the_model_runs_plain_again(net):
    before = hook_counts(net)
    with torch.no_grad():
        plain = net(X)
        with HookSession() as session:
            session.on_output(net.a, lambda y: y * 0)
            session.on_input(net.b, lambda x: x + 1)
            assert hook_counts(net) != before
        assert hook_counts(net) == before
        torch.testing.assert_close(net(X), plain, rtol=0, atol=0)


def test_hooks_are_removed_when_the_forward_raises_and_on_exit_is_skipped(net):
    before, events = hook_counts(net), []

    def boom(y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with HookSession() as session:
            session.on_output(net.b, boom)
            session.on_exit(lambda: events.append("exit"))
            net(X)
    assert hook_counts(net) == before and events == [] and open_sessions() == ()


def test_user_hooks_are_untouched_and_still_run(net):
    calls = []
    user = net.a.register_forward_hook(lambda m, a, out: calls.append("user"))
    try:
        before = hook_counts(net)
        with torch.no_grad():
            want = net.b(net.a(X) + 1)
            calls.clear()
            with HookSession() as session:
                session.on_output(net.a, lambda y: y + 1)
                got = net(X)
            assert calls == ["user"]
            torch.testing.assert_close(got, want, rtol=0, atol=0)
            assert hook_counts(net) == before
            net(X)
        assert calls == ["user", "user"]
    finally:
        user.remove()


def test_functions_act_only_inside_the_block(net):
    with torch.no_grad():
        plain = net(X)
        session = HookSession()
        session.on_output(net.a, lambda y: y * 0)
        torch.testing.assert_close(net(X), plain, rtol=0, atol=0)  # not entered yet
        with session:
            assert not torch.equal(net(X), plain)
        torch.testing.assert_close(net(X), plain, rtol=0, atol=0)

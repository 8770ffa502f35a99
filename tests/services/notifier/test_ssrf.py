"""Webhooks never reach this machine or private networks unless allowed.

Loopback probes run end to end against a real listener that must see no connection. Addresses
off this machine are probed at the guard with the resolver and the connection replaced, so no
packet is ever sent to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpcore
import pytest
from notifier_support import attempt, attempts, client, delivery, make_hook
from receivers import Receiver, Reply, receiver

from services.notifier import delivery as webhook
from services.notifier.clients import new_client
from services.notifier.guard import DestinationRefused
from shared.models import utcnow
from support import Stack

PUBLIC = "93.184.216.34"  # stands for "somewhere on the internet"; never dialled here


@contextmanager
def listeners() -> Iterator[tuple[Receiver, Receiver]]:
    with receiver("127.0.0.1") as ipv4, receiver("::1") as ipv6:
        yield ipv4, ipv6


def probe_url(kind: str, ipv4: Receiver, ipv6: Receiver) -> str:
    port4, port6 = ipv4.url.rsplit(":", 1)[1], ipv6.url.rsplit(":", 1)[1]
    return {
        "127.0.0.1": f"http://127.0.0.1:{port4}",
        "::1": f"http://[::1]:{port6}",
        "::ffff:127.0.0.1": f"http://[::ffff:127.0.0.1]:{port4}",
        "a name for 127.0.0.1": f"http://localhost:{port4}",
    }[kind]


@pytest.mark.parametrize("kind", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "a name for 127.0.0.1"])
def test_loopback_probes_are_refused_before_connecting(lite_stack: Stack, kind: str) -> None:
    with listeners() as (ipv4, ipv6):
        hook = make_hook(lite_stack, probe_url(kind, ipv4, ipv6))
        refused, allowed = hook.delivery(), hook.delivery()
        with client(allow_private=False, allow_loopback=False) as guarded:
            outcome = attempt(lite_stack, refused, now=utcnow(), http=guarded)
        assert outcome is not None and outcome.final
        assert ipv4.connections == ipv6.connections == 0
        dead = delivery(lite_stack, refused)
        assert dead.status == "dead" and "loopback address" in (dead.last_error or "")
        [logged] = attempts(lite_stack, refused)
        assert logged.error == dead.last_error and logged.status_code is None
        # The same probe, allowed, does reach the listener: the test can see a connection.
        with client(allow_private=True) as open_client:
            reached = attempt(lite_stack, allowed, now=utcnow(), http=open_client)
        assert reached is not None and reached.ok
        assert ipv4.connections + ipv6.connections == 1


class Connector(httpcore.NetworkBackend):
    """Stands in for the network: records every address the guard lets through, and reaches
    `PUBLIC` by connecting to a local receiver instead."""

    def __init__(self, local_port: int | None = None) -> None:
        self.local_port = local_port
        self.dialled: list[str] = []

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, **_: Any) -> Any:
        self.dialled.append(host)
        if host != PUBLIC or self.local_port is None:
            raise AssertionError(f"the guard let {host} through")
        return httpcore.SyncBackend().connect_tcp("127.0.0.1", self.local_port, timeout=timeout)


def resolver_for(answers: dict[str, list[str]]) -> Any:
    return lambda host, port: answers[host]


def test_a_redirect_to_loopback_is_not_followed(lite_stack: Stack) -> None:
    with receiver() as target, receiver() as public:
        public.reply(Reply(302, {"location": f"{target.url}/latest/meta-data"}))
        port = int(public.url.rsplit(":", 1)[1].split("/")[0])
        connector = Connector(port)
        hook = make_hook(lite_stack, "http://hooks.example.org/in")
        resolver = resolver_for({"hooks.example.org": [PUBLIC]})
        with new_client(
            allow_private=False,
            allow_loopback=False,
            timeout=2,
            resolver=resolver,
            connector=connector,
        ) as guarded:
            outcome = attempt(lite_stack, hook.delivery(), now=utcnow(), http=guarded)
        assert outcome is not None and outcome.status_code == 302 and not outcome.ok
        assert "not followed" in (outcome.error or "")
        assert connector.dialled == [PUBLIC] and target.connections == 0


OFF_MACHINE = {
    "169.254.169.254": "link-local",
    "10.0.0.1": "private",
    "192.168.1.1": "private",
    "172.16.0.1": "private",
    "100.64.0.1": "not a public",
    "224.0.0.1": "multicast",
    "0.0.0.0": "unspecified",
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "fc00::1": "private",
}


@pytest.mark.parametrize("address", sorted(OFF_MACHINE))
def test_addresses_off_this_machine_are_refused_at_the_guard(address: str) -> None:
    connector = Connector()
    host = f"[{address}]" if ":" in address else address
    with new_client(
        allow_private=False,
        allow_loopback=True,  # the local-trial setting still refuses everything but loopback
        timeout=2,
        resolver=resolver_for({address: [address]}),
        connector=connector,
    ) as guarded:
        message = webhook.build_message(msg_id="msg_x", body=b"{}", secrets=[], signed_at=utcnow())
        outcome = webhook.send(
            message, f"http://{host}/hooks", http=guarded, timeout=2, now=utcnow()
        )
    assert outcome.final and OFF_MACHINE[address] in (outcome.error or "")
    assert connector.dialled == []


@pytest.mark.parametrize(
    "answers",
    [
        ["169.254.169.254"],  # a name for the cloud metadata service
        ["10.0.0.1"],
        [PUBLIC, "192.168.1.1"],  # one bad answer is enough to refuse
    ],
)
def test_names_resolving_off_this_machine_are_refused(answers: list[str]) -> None:
    connector = Connector()
    with (
        new_client(
            allow_private=False,
            allow_loopback=False,
            timeout=2,
            resolver=resolver_for({"innocent.example.org": answers}),
            connector=connector,
        ) as guarded,
        pytest.raises(DestinationRefused, match=r"refused innocent\.example\.org"),
    ):
        guarded.post("http://innocent.example.org/hooks", content=b"{}")
    assert connector.dialled == []


def test_dns_rebinding_cannot_swap_the_address_after_the_check() -> None:
    answers = iter([[PUBLIC], ["127.0.0.1"]])
    with receiver() as public:
        public.default = lambda _: Reply(200, {"connection": "close"})  # every request reconnects
        connector = Connector(int(public.url.rsplit(":", 1)[1].split("/")[0]))
        with new_client(
            allow_private=False,
            allow_loopback=False,
            timeout=2,
            resolver=lambda host, port: next(answers),
            connector=connector,
        ) as guarded:
            assert guarded.post("http://rebind.example.org/hooks", content=b"{}").status_code == 200
            with pytest.raises(DestinationRefused, match=r"127\.0\.0\.1 is a loopback address"):
                guarded.post("http://rebind.example.org/hooks", content=b"{}")
    assert connector.dialled == [PUBLIC]

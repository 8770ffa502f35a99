"""What each answer of a real receiver on 127.0.0.1 does to a delivery, attempt by attempt."""

import base64
from datetime import timedelta
from email.utils import format_datetime

import pytest
from notifier_support import attempt, attempts, client, delivery, endpoint_row, make_hook
from receivers import Received, Reply, receiver
from standardwebhooks import Webhook

from servers import free_port
from services.notifier import delivery as webhook
from shared.models import utcnow
from support import Stack


def test_a_500_then_a_200_is_delivered_with_the_same_webhook_id(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        delivery_id = hook.delivery()
        hooks.reply(Reply(500, delay=0.05), Reply(200))
        now = utcnow()
        first = attempt(stack, delivery_id, now=now, http=http)
        assert first is not None and first.status_code == 500
        failed = delivery(stack, delivery_id)
        assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 1, 500)
        assert failed.next_attempt_at is not None
        assert attempt(stack, delivery_id, now=now + timedelta(seconds=1), http=http) is None
        second = attempt(stack, delivery_id, now=failed.next_attempt_at, http=http)
        assert second is not None and second.ok
        ids = {request.webhook_id for request in hooks.requests}
        assert ids == {f"msg_{delivery_id}"} and len(hooks.requests) == 2
        for request in hooks.requests:  # each attempt is signed at its own time
            assert Webhook(hook.secret).verify(request.body, request.headers)["type"] == (
                "unit.available"
            )
    done = delivery(stack, delivery_id)
    assert (done.status, done.attempts, done.next_attempt_at) == ("delivered", 2, None)
    log = attempts(stack, delivery_id)
    assert [a.status_code for a in log] == [500, 200]
    assert log[0].duration_ms >= 50 and log[0].error and log[0].error.startswith("HTTP 500")


def test_a_410_disables_the_endpoint_and_its_other_deliveries_die(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        gone, waiting = hook.delivery(), hook.delivery()
        hooks.reply(Reply(410))
        outcome = attempt(stack, gone, now=utcnow(), http=http)
        assert outcome is not None and outcome.disable_endpoint
        assert attempt(stack, waiting, now=utcnow(), http=http) is None
        assert len(hooks.requests) == 1
    endpoint = endpoint_row(stack, hook.id)
    assert not endpoint.enabled and "410" in (endpoint.disabled_reason or "")
    assert delivery(stack, gone).status == "dead"
    assert (delivery(stack, waiting).status, delivery(stack, waiting).last_error) == (
        "dead",
        f"endpoint disabled: {endpoint.disabled_reason}",
    )
    shown = stack.client.get(f"/v1/webhook-endpoints/{hook.id}", headers=hook.headers).json()
    assert shown["enabled"] is False and "410" in shown["disabled_reason"]


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured_in_seconds_and_as_a_date(stack: Stack, status: int) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        in_seconds, as_date = hook.delivery(), hook.delivery()
        now = utcnow()
        hooks.reply(
            Reply(status, {"retry-after": "120"}),
            Reply(status, {"retry-after": format_datetime(now + timedelta(hours=1), usegmt=True)}),
        )
        attempt(stack, in_seconds, now=now, http=http)
        attempt(stack, as_date, now=now, http=http)
    seconds_later = delivery(stack, in_seconds).next_attempt_at
    date_later = delivery(stack, as_date).next_attempt_at
    assert seconds_later is not None and date_later is not None
    assert timedelta(seconds=119) <= seconds_later - now <= timedelta(seconds=121)  # not 5 s
    assert timedelta(minutes=59) <= date_later - now <= timedelta(minutes=61)
    assert delivery(stack, in_seconds).last_status_code == status


def test_a_receiver_that_never_answers_is_recorded_as_a_timeout(stack: Stack) -> None:
    with receiver() as hooks, client(timeout=1) as http:
        hook = make_hook(stack, hooks.url)
        delivery_id = hook.delivery()
        hooks.reply(Reply(hang=True))
        outcome = attempt(stack, delivery_id, now=utcnow(), http=http, timeout=1)
    assert outcome is not None and outcome.error == "timed out after 1 s"
    [logged] = attempts(stack, delivery_id)
    assert logged.status_code is None and logged.error == "timed out after 1 s"
    assert 900 <= logged.duration_ms < 3000
    assert delivery(stack, delivery_id).status == "failed"


def test_a_receiver_trickling_its_answer_cannot_stretch_the_timeout(stack: Stack) -> None:
    with receiver() as hooks, client(timeout=1) as http:
        hook = make_hook(stack, hooks.url)
        delivery_id = hook.delivery()
        hooks.reply(Reply(trickle=0.2))  # each byte well within the read timeout
        outcome = attempt(stack, delivery_id, now=utcnow(), http=http, timeout=1)
    assert outcome is not None and outcome.error == "timed out after 1 s"
    assert outcome.duration_seconds < 2


def test_a_redirect_is_a_failure_and_is_not_followed(stack: Stack) -> None:
    with receiver() as elsewhere, receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        delivery_id = hook.delivery()
        hooks.reply(Reply(307, {"location": elsewhere.url}))
        outcome = attempt(stack, delivery_id, now=utcnow(), http=http)
        assert outcome is not None and not outcome.ok
        assert elsewhere.connections == 0
    failed = delivery(stack, delivery_id)
    assert failed.status == "failed" and failed.last_status_code == 307
    assert failed.last_error == f"HTTP 307: redirect to {elsewhere.url} not followed"


def test_tampering_with_body_id_or_timestamp_fails_verification(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        attempt(stack, hook.delivery(), now=utcnow(), http=http)
        [request] = hooks.requests
    verifier = Webhook(hook.secret)
    assert verifier.verify(request.body, request.headers)["data"]["unit"]["area"] == "riverside"
    stamp = int(request.headers["webhook-timestamp"])
    tampered = [
        (request.body.replace(b"riverside", b"harbour"), request.headers),
        (request.body, {**request.headers, "webhook-id": "msg_someone_else"}),
        (request.body, {**request.headers, "webhook-timestamp": str(stamp + 1)}),
        (request.body, {**request.headers, "webhook-signature": "v1,AAAA"}),
    ]
    for body, headers in tampered:
        with pytest.raises(Exception, match=r"[Ss]ignature"):
            verifier.verify(body, headers)


def test_credentials_in_the_endpoint_url_are_sent_as_basic_auth(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url.replace("http://", "http://hooks%40team:s3cr%3At@"))
        outcome = attempt(stack, hook.delivery(), now=utcnow(), http=http)
        assert outcome is not None and outcome.ok
        [request] = hooks.requests
    sent = base64.b64decode(request.headers["authorization"].removeprefix("Basic "))
    assert sent == b"hooks@team:s3cr:t"
    assert request.headers["host"].startswith("127.0.0.1:")  # (never the credentials)


def test_answers_are_read_to_the_end_so_one_connection_serves_each_attempt(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        delivery_ids = [hook.delivery() for _ in range(3)]
        hooks.reply(Reply(200), Reply(500), Reply(202))  # each with a body of its own
        now = utcnow()
        outcomes = [attempt(stack, d, now=now, http=http) for d in delivery_ids]
    assert [o.status_code if o else None for o in outcomes] == [200, 500, 202]
    assert hooks.connections == 1


def test_the_request_on_the_wire_is_the_one_httpx_would_send(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, f"{hooks.url}/in?team=act%201&v=2")
        outcome = attempt(stack, hook.delivery(), now=utcnow(), http=http)
        assert outcome is not None and outcome.ok
        [sent] = hooks.requests
        http.post(f"{hooks.url}/in?team=act%201&v=2", content=sent.body, headers=sent.headers)
        [_, plain] = hooks.requests
    assert sent.path == plain.path == "/hooks/in?team=act%201&v=2"
    for name in ("host", "content-length", "content-type", "user-agent"):
        assert sent.headers[name] == plain.headers[name]
    assert sent.body == plain.body and int(sent.headers["content-length"]) == len(sent.body)
    assert "authorization" not in sent.headers


def test_a_receiver_not_listening_is_a_failure_to_retry(stack: Stack) -> None:
    with client() as http:
        hook = make_hook(stack, f"http://127.0.0.1:{free_port()}/hooks")
        delivery_id = hook.delivery()
        outcome = attempt(stack, delivery_id, now=utcnow(), http=http)
    assert outcome is not None and not outcome.ok and not outcome.final
    assert (outcome.error or "").startswith("ConnectError: ")
    failed = delivery(stack, delivery_id)
    assert (failed.status, failed.last_status_code) == ("failed", None)
    assert failed.next_attempt_at is not None and failed.last_error == outcome.error


def hang_up(request: Received) -> Reply:
    raise ConnectionError("the receiver closes the connection without answering")


def test_a_receiver_closing_without_an_answer_is_a_failure_to_retry(stack: Stack) -> None:
    with receiver() as hooks, client() as http:
        hook = make_hook(stack, hooks.url)
        delivery_id = hook.delivery()
        hooks.default = hang_up
        outcome = attempt(stack, delivery_id, now=utcnow(), http=http)
    assert outcome is not None and not outcome.ok and outcome.status_code is None
    assert (outcome.error or "").startswith("RemoteProtocolError: ")
    assert delivery(stack, delivery_id).status == "failed"


@pytest.mark.parametrize("url", ["http:///hooks", "https://:443/hooks", "hooks.example.org/in"])
def test_an_endpoint_url_without_a_host_is_a_failure_not_a_crash(url: str) -> None:
    message = webhook.build_message(msg_id="msg_x", body=b"{}", secrets=[], signed_at=utcnow())
    with client() as http:
        outcome = webhook.send(message, url, http=http, timeout=2, now=utcnow())
    assert not outcome.ok and outcome.status_code is None and outcome.error

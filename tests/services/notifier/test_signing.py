"""Our signer against the official Standard Webhooks package, byte for byte."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from services.notifier.delivery import build_message, sign


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_signatures_are_the_official_packages_for_each_secret_in_turn() -> None:
    current, previous = new_secret(), new_secret()
    signed_at = datetime(2026, 12, 7, 11, 30, 5, tzinfo=UTC)
    body = '{"type":"support.assigned","data":{"person":{"name":"Zoë"}}}'.encode()

    header = sign(secrets=[current, previous], msg_id="msg_01", timestamp=signed_at, body=body)

    expected = [
        Webhook(secret).sign("msg_01", signed_at, body.decode()) for secret in (current, previous)
    ]
    assert header.split(" ") == expected


def test_a_built_message_verifies_with_either_secret_and_not_with_another() -> None:
    current, previous = new_secret(), new_secret()
    body = b'{"type":"offer.created","timestamp":"2026-12-07T11:30:00+00:00","data":{}}'
    message = build_message(
        msg_id="msg_02", body=body, secrets=[current, previous], signed_at=datetime.now(UTC)
    )

    for secret in (current, previous):
        assert Webhook(secret).verify(body, message.headers)["type"] == "offer.created"
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        Webhook(new_secret()).verify(body, message.headers)


def test_unpadded_secrets_sign_as_the_official_package_does_and_empty_ones_are_refused() -> None:
    unpadded = new_secret().rstrip("=")
    signed_at = datetime(2026, 12, 7, 11, 30, 5, tzinfo=UTC)
    body = b'{"type":"offer.created"}'

    header = sign(secrets=[unpadded], msg_id="msg_03", timestamp=signed_at, body=body)

    assert header == Webhook(unpadded).sign("msg_03", signed_at, body.decode())
    with pytest.raises(ValueError, match="empty"):
        sign(secrets=["whsec_"], msg_id="msg_03", timestamp=signed_at, body=body)

"""Envelope encryption and crypto-shredding (R20, R29)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from contracts import EventEnvelope
from services.common.crypto import (
    DecryptionError,
    InMemoryDataKeyring,
    KeyWrapper,
    PiiCipher,
)

PII = {"email": "maria.rossi@example.org", "phone": "+393471234567"}


async def _event(
    cipher: PiiCipher, subject: str = "sub-1", event_id: str = "ev-1"
) -> EventEnvelope:
    encrypted = await cipher.encrypt(
        tenant_id="acme", subject_id=subject, event_id=event_id, pii=PII
    )
    return EventEnvelope(
        id=event_id,
        type="lead.captured",
        version=1,
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        tenant_id="acme",
        subject_id=subject,
        correlation_id="c-1",
        producer="test",
        pii=encrypted,
    )


async def test_round_trip_and_no_plaintext_in_the_envelope() -> None:
    cipher = PiiCipher(InMemoryDataKeyring())
    event = await _event(cipher)
    assert "maria" not in event.model_dump_json()
    assert await cipher.decrypt(event) == PII


async def test_destroying_the_subject_key_makes_every_event_unreadable() -> None:
    keyring = InMemoryDataKeyring()
    cipher = PiiCipher(keyring)
    first, second = await _event(cipher, event_id="e1"), await _event(cipher, event_id="e2")
    other = await _event(cipher, subject="sub-2", event_id="e3")
    assert await keyring.destroy("acme", "sub-1") == 1
    assert await cipher.decrypt(first) is None
    assert await cipher.decrypt(second) is None
    assert await keyring.is_destroyed(first.pii.key_id if first.pii else "")
    assert await cipher.decrypt(other) == PII, "another subject's data must survive"


async def test_a_returning_subject_gets_a_new_key_generation() -> None:
    keyring = InMemoryDataKeyring()
    cipher = PiiCipher(keyring)
    old = await _event(cipher, event_id="e1")
    await keyring.destroy("acme", "sub-1")
    new = await _event(cipher, event_id="e2")
    assert old.pii is not None
    assert new.pii is not None
    assert old.pii.key_id != new.pii.key_id
    assert await cipher.decrypt(old) is None
    assert await cipher.decrypt(new) == PII


async def test_altered_ciphertext_is_tampering_not_erasure() -> None:
    cipher = PiiCipher(InMemoryDataKeyring())
    event = await _event(cipher)
    assert event.pii is not None
    raw = bytearray(base64.b64decode(event.pii.ciphertext))
    raw[0] ^= 1
    altered = event.model_copy(
        update={"pii": event.pii.model_copy(update={"ciphertext": base64.b64encode(raw).decode()})}
    )
    with pytest.raises(DecryptionError):
        await cipher.decrypt(altered)


async def test_ciphertext_moved_to_another_event_does_not_decrypt() -> None:
    cipher = PiiCipher(InMemoryDataKeyring())
    event = await _event(cipher, event_id="e1")
    moved = event.model_copy(update={"id": "e2"})
    with pytest.raises(DecryptionError):
        await cipher.decrypt(moved)


def test_key_wrapping_needs_the_right_kek(kek: bytes) -> None:
    wrapper = KeyWrapper(kek, "kek-1")
    wrapped = wrapper.wrap("acme/sub-1/1", b"k" * 32)
    assert wrapper.unwrap("acme/sub-1/1", wrapped) == b"k" * 32
    with pytest.raises(DecryptionError):
        KeyWrapper(bytes(32), "kek-2").unwrap("acme/sub-1/1", wrapped)
    with pytest.raises(DecryptionError):
        wrapper.unwrap("acme/sub-2/1", wrapped)  # bound to its key id

"""Sealing events: the canonical form (RFC 8785), MACs, chains, and chains after a failure."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import EventEnvelope
from services.common.integrity import (
    ChainSealer,
    _encode,
    canonical_json,
    derive_integrity_key,
    expected_mac,
    mac_of,
)
from services.common.settings import CommonSettings

KEY = os.urandom(32)


def event(n: int = 0, **data: Any) -> EventEnvelope:
    return EventEnvelope(
        type="lead.captured",
        version=1,
        occurred_at=datetime(2026, 11, 1, 9, 30, tzinfo=UTC),
        tenant_id="acme",
        subject_id=f"sub-{n}",
        correlation_id="corr-1",
        producer="test",
        data=data or {"n": n},
    )


def test_the_rfc_8785_example_is_reproduced_exactly() -> None:
    # RFC 8785, section 3.2.2: input and canonical output.
    parsed = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert (
        canonical_json(parsed)
        == (
            '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
            '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
        ).encode()
    )


def test_keys_sort_by_utf16_code_units_as_rfc_8785_section_3_2_3_says() -> None:
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001f600", "\u0080", "\u00f6"]
    text = canonical_json(dict.fromkeys(keys)).decode()
    assert [next(iter(json.loads("{" + part + "}"))) for part in text[1:-1].split(",")] == [
        "\r",
        "1",
        "\u0080",
        "\u00f6",
        "\u20ac",
        "\U0001f600",
        "\ufb33",
    ]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (2.0, "2"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (1e-6, "0.000001"),
        (-1.5e-10, "-1.5e-10"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_numbers_are_written_as_ecmascript_writes_them(number: float, text: str) -> None:
    assert canonical_json(number) == text.encode()


def test_no_nan_and_no_infinity() -> None:
    with pytest.raises(ValueError, match="NaN"):
        canonical_json({"x": float("nan")})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


def _general(value: Any) -> bytes:
    out: list[str] = []
    _encode(value, out)
    return "".join(out).encode("utf-8", "surrogatepass")


@given(json_values)
def test_the_fast_path_and_the_general_encoder_agree(value: Any) -> None:
    assert canonical_json(value) == _general(value)


@given(json_values)
def test_the_canonical_form_survives_any_re_serialisation(value: Any) -> None:
    canonical = canonical_json(value)
    assert canonical_json(json.loads(canonical)) == canonical
    assert canonical_json(json.loads(json.dumps(value, indent=1))) == canonical


def test_a_chain_numbers_its_events_and_links_each_to_the_previous_mac() -> None:
    sealer = ChainSealer(KEY, "lead-ingest")
    sealed = [sealer.seal(event(n)) for n in range(3)]
    links = [link for _, link in sealed]
    assert [link.seq for link in links] == [0, 1, 2]
    assert {link.chain for link in links} == {sealer.chain}
    assert sealer.chain.startswith("lead-ingest/")
    assert [link.prev for link in links] == [None, links[0].mac, links[1].mac]
    for envelope, link in sealed:
        assert envelope.integrity == link
        assert expected_mac(KEY, envelope) == link.mac


def test_a_sealed_event_verifies_from_its_bytes_after_any_round_trip() -> None:
    sealed, integrity = ChainSealer(KEY, "p").seal(event(data={"score": 0.1, "ratio": 2.0}))
    wire = sealed.model_dump_json().encode()
    assert mac_of(KEY, json.loads(wire)) == integrity.mac
    # crm-sync's dead letters and read models re-serialise envelopes through the model
    again = EventEnvelope.model_validate_json(wire).model_dump_json(indent=2)
    assert mac_of(KEY, json.loads(again)) == integrity.mac
    assert mac_of(os.urandom(32), json.loads(wire)) != integrity.mac


def test_a_failed_publish_ends_the_chain_and_the_next_event_declares_it_void() -> None:
    sealer = ChainSealer(KEY, "p")
    _, first_link = sealer.seal(event(0))
    _, lost = sealer.seal(event(1))
    old_chain = sealer.chain
    sealer.failed(lost)
    assert sealer.chain != old_chain
    nxt, link = sealer.seal(event(2))
    assert (link.seq, link.prev) == (0, None)
    assert [(p.chain, p.seq) for p in link.void] == [(old_chain, 1)]
    assert expected_mac(KEY, nxt) == link.mac
    # the failure of an already retired chain does not end the current one
    current = sealer.chain
    sealer.failed(first_link)
    assert sealer.chain == current
    _, later = sealer.seal(event(3))
    assert [(p.chain, p.seq) for p in later.void] == [(old_chain, 0)]


def test_a_failed_event_hands_its_own_void_declarations_on() -> None:
    sealer = ChainSealer(KEY, "p")
    _, lost = sealer.seal(event(0))
    sealer.failed(lost)
    _, carrier = sealer.seal(event(1))
    sealer.failed(carrier)
    _, next_link = sealer.seal(event(2))
    assert {(p.chain, p.seq) for p in next_link.void} == {
        (lost.chain, 0),
        (carrier.chain, 0),
    }


def test_the_key_is_the_setting_or_derived_one_way_from_the_kek(kek_b64: str, kek: bytes) -> None:
    derived = CommonSettings(kek=kek_b64).integrity_key_bytes()
    assert derived == derive_integrity_key(kek)
    assert derived != kek
    own = os.urandom(32)
    explicit = CommonSettings(kek=kek_b64, integrity_key=base64.b64encode(own).decode())
    assert explicit.integrity_key_bytes() == own
    with pytest.raises(ValueError, match="LEADTRAIL_INTEGRITY_KEY"):
        CommonSettings(kek=kek_b64, integrity_key="c2hvcnQ=")

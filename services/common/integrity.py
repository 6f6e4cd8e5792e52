"""Tamper evidence for the event log: chained, HMAC-sealed envelopes (docs/integrity.md).

Every publishing process is one or more *chains*: ``<producer>/<UUIDv7>``. Each event it
publishes gets the next ``seq`` of the current chain, the previous event's ``mac`` as ``prev``,
and ``mac`` = HMAC-SHA256(integrity key, canonical form of the envelope without ``mac``).

The canonical form is RFC 8785 (JSON Canonicalization Scheme) of the envelope's JSON object with
the member ``mac`` removed from ``integrity``: keys sorted by UTF-16 code units, no whitespace,
numbers as ECMAScript prints them, strings with only the escapes JSON requires, UTF-8. It is
computed from parsed JSON values, so any re-serialisation of the same event (another key
order, another float spelling) verifies, and any change of a value does not.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

from contracts.envelope import ChainPosition, EventEnvelope, Integrity, new_event_id

__all__ = [
    "MAX_VOID_PER_EVENT",
    "ChainSealer",
    "canonical_json",
    "derive_integrity_key",
    "expected_mac",
    "mac_of",
]

MAX_VOID_PER_EVENT = 500
_DERIVATION_LABEL = b"leadtrail/integrity-key/v1"


def derive_integrity_key(kek: bytes) -> bytes:
    """The integrity key of a deployment that set none: one-way from the KEK, so handing it
    to an auditor reveals nothing about the KEK."""
    return hmac.new(kek, _DERIVATION_LABEL, hashlib.sha256).digest()


def _number(value: float) -> str:
    """ECMAScript's Number::toString for a finite double (RFC 8785, section 3.2.2.3)."""
    if not math.isfinite(value):
        raise ValueError("JSON has no NaN or Infinity")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(whole + fraction) - len(digits))
    digits = digits.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = f"{digits[:n]}.{digits[n:]}"
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + (f".{digits[1:]}" if k > 1 else "") + f"e{'+' if e > 0 else '-'}{abs(e)}"
    return sign + text


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def _encode(value: Any, out: list[str]) -> None:
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise TypeError("JSON object keys are strings")
        out.append("{")
        for index, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16-be"))):
            out.append(("," if index else "") + json.dumps(key, ensure_ascii=False) + ":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(_scalar(value))


def _plain(value: Any) -> bool:
    """True when the standard library's JSON encoder already writes ``value`` canonically:
    ASCII keys (code point order is then UTF-16 order) and floats Python prints like
    ECMAScript does. Most events are plain; the rest take the slower, general path. (Exact
    type checks: anything unusual takes the general path, which is always right.)"""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            continue
        if kind is dict:
            for key in item:
                if type(key) is not str or not key.isascii():
                    return False
            pending.extend(item.values())
        elif kind is list or kind is tuple:
            pending.extend(item)
        elif kind is not float or not math.isfinite(item) or repr(item) != _number(item):
            return False
    return True


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical form of a parsed JSON value. Integers are written exactly (RFC 8785
    agrees for every integer up to 2**53, the only ones Leadtrail events carry)."""
    if _plain(value):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    else:
        out: list[str] = []
        _encode(value, out)
        text = "".join(out)
    return text.encode("utf-8", "surrogatepass")


def mac_of(key: bytes, envelope: Mapping[str, Any]) -> str:
    """The MAC of an envelope given as parsed JSON (any ``integrity.mac`` in it is ignored)."""
    unsealed = dict(envelope)
    integrity = unsealed.get("integrity")
    if not isinstance(integrity, Mapping):
        raise ValueError("the envelope has no integrity block")
    unsealed["integrity"] = {name: v for name, v in integrity.items() if name != "mac"}
    return hmac.new(key, canonical_json(unsealed), hashlib.sha256).hexdigest()


def expected_mac(key: bytes, envelope: EventEnvelope) -> str:
    """The MAC ``envelope`` must carry: computed over its JSON form, exactly as it travels."""
    return mac_of(key, envelope.model_dump(mode="json"))


class ChainSealer:
    """The chain state of one publishing process.

    :meth:`seal` must be called, and the sealed event handed to the producer, in one critical
    section (:attr:`lock`) so the order events are enqueued in is the order of ``seq``.
    :meth:`failed` retires the chain of an event whose publish failed (later events start a new
    chain) and remembers its position, declared ``void`` by the next events sealed.
    """

    def __init__(self, key: bytes, producer: str) -> None:
        self._key = key
        self._producer = producer
        self.lock = asyncio.Lock()
        self._void: list[ChainPosition] = []
        self.new_chain()

    @property
    def chain(self) -> str:
        return self._chain

    def new_chain(self) -> None:
        self._chain = f"{self._producer}/{new_event_id()}"
        self._seq = 0
        self._prev: str | None = None

    def seal(self, envelope: EventEnvelope) -> tuple[EventEnvelope, Integrity]:
        """``envelope`` with its integrity block (the chain's next position), and that block."""
        void, self._void = (
            tuple(self._void[:MAX_VOID_PER_EVENT]),
            self._void[MAX_VOID_PER_EVENT:],
        )
        body = envelope.model_dump(mode="json")
        body["integrity"] = {
            "alg": "HMAC-SHA256",
            "chain": self._chain,
            "seq": self._seq,
            "prev": self._prev,
            "void": [position.model_dump() for position in void],
        }
        mac = mac_of(self._key, body)
        integrity = Integrity(chain=self._chain, seq=self._seq, prev=self._prev, void=void, mac=mac)
        self._seq += 1
        self._prev = mac
        return envelope.model_copy(update={"integrity": integrity}), integrity

    def failed(self, integrity: Integrity) -> None:
        """The publish of the event sealed with ``integrity`` failed: it may be missing from the
        log. Its chain ends (if still current) and the next events declare it void, along with
        the positions it was itself carrying as void."""
        if integrity.chain == self._chain:
            self.new_chain()
        self._void.append(ChainPosition(chain=integrity.chain, seq=integrity.seq))
        self._void.extend(integrity.void)

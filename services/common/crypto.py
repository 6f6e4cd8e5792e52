"""Per-subject envelope encryption and crypto-shredding (DESIGN principle 4, R20, R29).

Every data subject has a data key (AES-256-GCM, 32 random bytes). Personal fields of an event
are encrypted with it; the data key itself is stored only wrapped (encrypted) by the
key-encryption key (KEK) from settings. Destroying a subject's data keys makes every copy of
their personal data unreadable: on every topic, in every replica and backup.

Key ids have the form ``<tenant_id>/<subject_id>/<generation>``. A subject whose keys were
destroyed and who comes back later (a new lead, new consent) gets the next generation: old
ciphertexts stay unreadable, new ones use the new key.

::

    DataKeyring (protocol)          PiiCipher
      ├── MongoDataKeyring            encrypt(envelope facts, pii dict, key) -> EncryptedPII
      └── InMemoryDataKeyring         decrypt(envelope) -> dict | None (None: key destroyed)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from contracts.envelope import EncryptedPII, EventEnvelope
from services.common.clock import Clock, SystemClock
from services.common.store import only_duplicate_keys

__all__ = [
    "DataKey",
    "DataKeyring",
    "DecryptionError",
    "InMemoryDataKeyring",
    "KeyWrapper",
    "MongoDataKeyring",
    "PiiCipher",
    "seal_of",
]

NONCE_BYTES = 12


class DecryptionError(Exception):
    """Ciphertext does not match its key or its event: tampering or a wrong KEK."""


@dataclass(frozen=True)
class DataKey:
    key_id: str
    tenant_id: str
    subject_id: str
    material: bytes

    def __repr__(self) -> str:  # never print key material
        return f"DataKey(key_id={self.key_id!r})"


class DataKeyring(Protocol):
    async def get_or_create(self, tenant_id: str, subject_id: str) -> DataKey:
        """The subject's active data key, created on first use."""
        ...

    async def get(self, key_id: str) -> DataKey | None:
        """The key with this id, or None when it was destroyed (or never existed)."""
        ...

    async def create_first(self, tenant_id: str, subject_id: str) -> DataKey:
        """:meth:`get_or_create` for a subject the caller just created (no key can exist
        yet, unless a concurrent caller created the same subject: then that key)."""
        ...

    async def destroy(self, tenant_id: str, subject_id: str) -> int:
        """Destroy every data key of the subject; returns how many were destroyed now."""
        ...

    async def destroy_all(self, subjects: Iterable[tuple[str, str]]) -> int:
        """:meth:`destroy` for many subjects (tenant, subject) at once."""
        ...

    async def is_destroyed(self, key_id: str) -> bool: ...


class KeyWrapper:
    """Wraps data keys with the KEK (AES-256-GCM, the key id as associated data)."""

    def __init__(self, kek: bytes, kek_id: str) -> None:
        if len(kek) != 32:
            raise ValueError("the KEK must be 32 bytes")
        self._aead = AESGCM(kek)
        self.kek_id = kek_id

    def wrap(self, key_id: str, material: bytes) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, material, key_id.encode())
        return base64.b64encode(nonce + sealed).decode()

    def unwrap(self, key_id: str, wrapped: str) -> bytes:
        raw = base64.b64decode(wrapped)
        try:
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode())
        except InvalidTag as error:
            raise DecryptionError(f"cannot unwrap data key {key_id}: wrong KEK?") from error


def _key_id(tenant_id: str, subject_id: str, generation: int) -> str:
    return f"{tenant_id}/{subject_id}/{generation}"


class _KeyCache:
    """An in-process cache of unwrapped keys, and of the current key of each subject.

    A key destroyed by another process stays usable here until this process handles the
    subject's ``erasure.requested`` (every service that decrypts calls :meth:`forget` then),
    and at most ``ttl`` seconds whatever happens. Within a process, a key read before its
    destruction can't be put back afterwards: :meth:`forget` leaves a tombstone that refuses
    keys read before it.
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, DataKey]] = {}
        self._current: dict[str, tuple[float, DataKey]] = {}
        self._tombstones: dict[str, float] = {}

    @staticmethod
    def _prefix(tenant_id: str, subject_id: str) -> str:
        return f"{tenant_id}/{subject_id}/"

    @staticmethod
    def _fresh(entries: dict[str, tuple[float, DataKey]], name: str) -> DataKey | None:
        entry = entries.get(name)
        if entry is None or entry[0] < time.monotonic():
            entries.pop(name, None)
            return None
        return entry[1]

    def get(self, key_id: str) -> DataKey | None:
        return self._fresh(self._entries, key_id)

    def current(self, tenant_id: str, subject_id: str) -> DataKey | None:
        """The subject's live key, as this process last read or created it."""
        return self._fresh(self._current, self._prefix(tenant_id, subject_id))

    def put(self, key: DataKey, read_at: float, *, current: bool = False) -> None:
        """Cache ``key``, read from the store at ``read_at`` (``time.monotonic()``);
        ``current``: the subject's pointer named it."""
        prefix = self._prefix(key.tenant_id, key.subject_id)
        forgotten = self._tombstones.get(prefix)
        if self._ttl <= 0 or (forgotten is not None and forgotten >= read_at):
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
            self._current.clear()
        expires = time.monotonic() + self._ttl
        self._entries[key.key_id] = (expires, key)
        if current:
            self._current[prefix] = (expires, key)

    def forget(self, tenant_id: str, subject_id: str) -> None:
        prefix = self._prefix(tenant_id, subject_id)
        now = time.monotonic()
        if len(self._tombstones) > 10_000:
            horizon = now - max(self._ttl, 60.0)
            self._tombstones = {p: t for p, t in self._tombstones.items() if t > horizon}
        self._tombstones[prefix] = now
        self._current.pop(prefix, None)
        for key_id in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key_id]


class MongoDataKeyring:
    """Data keys in MongoDB collection ``data_keys``, wrapped by the KEK.

    Two kinds of documents, both read by ``_id``:

    * ``{_id: "<tenant>/<subject>/<generation>", wrapped, kek_id, created_at, destroyed_at}``:
      one key. Destruction removes ``wrapped`` and sets ``destroyed_at``; the tombstone stays so
      exports and audits can say "erased" rather than "unknown".
    * ``{_id: "current:<tenant>/<subject>", generation, destroyed}``: which generation is live.

    Creation is race-free across processes: a key is inserted under its deterministic id before
    the pointer moves to it, and a unique-key insert is atomic everywhere. A key the pointer
    does not name yet (its creator was killed between the two writes) is adopted by the next
    caller: it never encrypted anything, since its creator died before returning it.
    """

    def __init__(
        self,
        collection: AsyncCollection[dict[str, Any]],
        wrapper: KeyWrapper,
        *,
        clock: Clock | None = None,
        cache_ttl: float = 2.0,
    ) -> None:
        self._collection = collection
        self._wrapper = wrapper
        self._clock = clock or SystemClock()
        self._cache = _KeyCache(cache_ttl)

    async def ensure_indexes(self) -> None:
        """Every lookup is by ``_id``; nothing else to index."""

    @staticmethod
    def _pointer_id(tenant_id: str, subject_id: str) -> str:
        return f"current:{tenant_id}/{subject_id}"

    async def get_or_create(self, tenant_id: str, subject_id: str) -> DataKey:
        cached = self._cache.current(tenant_id, subject_id)
        if cached is not None:
            return cached
        return await self._find_or_create(tenant_id, subject_id, look_first=True)

    async def create_first(self, tenant_id: str, subject_id: str) -> DataKey:
        """One round trip: the key and the pointer to it in one command, nothing read."""
        cached = self._cache.current(tenant_id, subject_id)
        if cached is not None:
            return cached
        return await self._find_or_create(tenant_id, subject_id, look_first=False)

    async def _find_or_create(
        self, tenant_id: str, subject_id: str, *, look_first: bool
    ) -> DataKey:
        """The pointer's key; else a new generation: the key and the pointer moved to it are
        two upserts of one ordered ``update`` command (one round trip). The key's upsert only
        inserts; when the generation existed already (another process created it), that key
        is read and used."""
        pointer_id = self._pointer_id(tenant_id, subject_id)
        for attempt in range(50):
            read_at = time.monotonic()
            pointer = await self._collection.find_one({"_id": pointer_id}) if look_first else None
            look_first = True  # a retry reads what the concurrent creator wrote
            if pointer is not None and not pointer.get("destroyed"):
                key = await self.get(_key_id(tenant_id, subject_id, int(pointer["generation"])))
                if key is not None:
                    self._cache.put(key, read_at, current=True)
                    return key
            generation = 1 if pointer is None else int(pointer["generation"]) + 1
            key_id = _key_id(tenant_id, subject_id, generation)
            material = AESGCM.generate_key(bit_length=256)
            new_key = {
                "tenant_id": tenant_id,
                "subject_id": subject_id,
                "generation": generation,
                "wrapped": self._wrapper.wrap(key_id, material),
                "kek_id": self._wrapper.kek_id,
                "created_at": self._clock.now(),
                "destroyed_at": None,
            }
            move_pointer = UpdateOne(
                {"_id": pointer_id},
                {"$set": {"generation": generation, "destroyed": False}},
                upsert=True,
            )
            try:
                result = await self._collection.bulk_write(
                    [
                        UpdateOne({"_id": key_id}, {"$setOnInsert": new_key}, upsert=True),
                        move_pointer,
                    ],
                    ordered=True,
                )
                inserted = 0 in (result.upserted_ids or {})
            except BulkWriteError as error:
                if not only_duplicate_keys(error):
                    raise
                inserted = False  # a concurrent upsert of the same generation won
            if inserted:
                key = DataKey(key_id, tenant_id, subject_id, material)
            else:
                # This generation exists: another process created it and points (or is about
                # to point) at it, or was killed before it could. Use it and point at it
                # ourselves (both name the same generation); waiting would wait for ever after
                # a kill.
                existing = await self._collection.find_one({"_id": key_id})
                if existing is None or existing.get("destroyed_at") is not None:
                    await asyncio.sleep(0.005 * (attempt + 1))
                    continue
                key = self._unwrap(existing, read_at)
                await self._collection.bulk_write([move_pointer])
            self._cache.put(key, read_at, current=True)
            return key
        raise RuntimeError(f"could not create a data key for {tenant_id}/{subject_id}")

    async def get(self, key_id: str) -> DataKey | None:
        cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        read_at = time.monotonic()
        document = await self._collection.find_one({"_id": key_id})
        if document is None or document.get("destroyed_at") is not None:
            return None
        return self._unwrap(document, read_at)

    async def destroy(self, tenant_id: str, subject_id: str) -> int:
        return await self.destroy_all([(tenant_id, subject_id)])

    async def destroy_all(self, subjects: Iterable[tuple[str, str]]) -> int:
        """Three round trips whatever the number of subjects: read their pointers, mark them
        destroyed, destroy every generation of their keys (a key destroyed before keeps its
        date)."""
        wanted = {self._pointer_id(t, s): (t, s) for t, s in subjects}
        for tenant_id, subject_id in wanted.values():
            self._cache.forget(tenant_id, subject_id)
        if not wanted:
            return 0
        pointers = [p async for p in self._collection.find({"_id": {"$in": list(wanted)}})]
        if not pointers:
            return 0
        await self._collection.update_many(
            {"_id": {"$in": [p["_id"] for p in pointers]}}, {"$set": {"destroyed": True}}
        )
        key_ids = [
            _key_id(*wanted[pointer["_id"]], generation)
            for pointer in pointers
            for generation in range(1, int(pointer["generation"]) + 1)
        ]
        result = await self._collection.update_many(
            {"_id": {"$in": key_ids}, "destroyed_at": None},
            {"$set": {"destroyed_at": self._clock.now()}, "$unset": {"wrapped": ""}},
        )
        # Again, now that the store says destroyed: a read that raced the updates can't cache.
        for tenant_id, subject_id in wanted.values():
            self._cache.forget(tenant_id, subject_id)
        return int(result.modified_count)

    async def prefetch(
        self, key_ids: Iterable[str], subjects: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Read the keys ``key_ids`` and the current keys of ``subjects`` (tenant, subject)
        that are not cached yet, in one round trip (two when a current key is not among
        ``key_ids``), so that a batch's events decrypt and encrypt without another read."""
        read_at = time.monotonic()
        wanted = {k for k in key_ids if self._cache.get(k) is None}
        pointers = {
            self._pointer_id(tenant_id, subject_id): (tenant_id, subject_id)
            for tenant_id, subject_id in subjects
            if self._cache.current(tenant_id, subject_id) is None
        }
        if not wanted and not pointers:
            return
        found = await self._collection.find({"_id": {"$in": [*wanted, *pointers]}}).to_list()
        keys = {str(d["_id"]): d for d in found if str(d["_id"]) not in pointers}
        current: dict[str, tuple[str, str]] = {}
        for document in found:
            subject = pointers.get(str(document["_id"]))
            if subject is not None and not document.get("destroyed"):
                current[_key_id(*subject, int(document["generation"]))] = subject
        missing = [key_id for key_id in current if key_id not in keys]
        if missing:
            more = await self._collection.find({"_id": {"$in": missing}}).to_list()
            keys.update((str(d["_id"]), d) for d in more)
        for key_id, document in keys.items():
            if document.get("destroyed_at") is None and document.get("wrapped"):
                key = self._unwrap(document, read_at)
                if key_id in current:
                    self._cache.put(key, read_at, current=True)

    async def is_destroyed(self, key_id: str) -> bool:
        document = await self._collection.find_one({"_id": key_id}, {"destroyed_at": 1})
        return document is not None and document.get("destroyed_at") is not None

    def forget_cached(self, tenant_id: str, subject_id: str) -> None:
        self._cache.forget(tenant_id, subject_id)

    def _unwrap(self, document: dict[str, Any], read_at: float) -> DataKey:
        key_id = str(document["_id"])
        key = DataKey(
            key_id,
            str(document["tenant_id"]),
            str(document["subject_id"]),
            self._wrapper.unwrap(key_id, str(document["wrapped"])),
        )
        self._cache.put(key, read_at)
        return key


class InMemoryDataKeyring:
    """The same contract in memory, for unit tests of handlers and domain code."""

    def __init__(self, clock: Clock | None = None) -> None:
        self._keys: dict[str, DataKey | None] = {}
        self._generations: dict[tuple[str, str], int] = {}
        self._destroyed_at: dict[str, datetime] = {}
        self._clock = clock or SystemClock()

    async def get_or_create(self, tenant_id: str, subject_id: str) -> DataKey:
        generation = self._generations.get((tenant_id, subject_id), 0)
        key_id = _key_id(tenant_id, subject_id, generation)
        existing = self._keys.get(key_id)
        if existing is not None:
            return existing
        generation += 1
        key_id = _key_id(tenant_id, subject_id, generation)
        key = DataKey(key_id, tenant_id, subject_id, AESGCM.generate_key(bit_length=256))
        self._keys[key_id] = key
        self._generations[(tenant_id, subject_id)] = generation
        return key

    async def get(self, key_id: str) -> DataKey | None:
        return self._keys.get(key_id)

    async def create_first(self, tenant_id: str, subject_id: str) -> DataKey:
        return await self.get_or_create(tenant_id, subject_id)

    async def destroy_all(self, subjects: Iterable[tuple[str, str]]) -> int:
        return sum([await self.destroy(t, s) for t, s in subjects])

    async def destroy(self, tenant_id: str, subject_id: str) -> int:
        destroyed = 0
        for key_id, key in self._keys.items():
            if key is not None and key.tenant_id == tenant_id and key.subject_id == subject_id:
                self._keys[key_id] = None
                self._destroyed_at[key_id] = self._clock.now()
                destroyed += 1
        return destroyed

    async def is_destroyed(self, key_id: str) -> bool:
        return key_id in self._destroyed_at


def seal_of(envelope: EventEnvelope) -> dict[str, Any] | None:
    """An event's encrypted personal data with the event id it is bound to (its AAD), as read
    models keep it; decrypted again with :meth:`PiiCipher.open_sealed`."""
    if envelope.pii is None:
        return None
    return {"event_id": envelope.id, "pii": envelope.pii.model_dump()}


class PiiCipher:
    """Encrypts an event's personal fields with the subject's key, bound to the event id."""

    def __init__(self, keyring: DataKeyring) -> None:
        self.keyring = keyring

    @staticmethod
    def _aad(tenant_id: str, subject_id: str, event_id: str) -> bytes:
        return f"{tenant_id}|{subject_id}|{event_id}".encode()

    async def encrypt(
        self, *, tenant_id: str, subject_id: str, event_id: str, pii: dict[str, Any]
    ) -> EncryptedPII:
        key = await self.keyring.get_or_create(tenant_id, subject_id)
        nonce = os.urandom(NONCE_BYTES)
        plaintext = json.dumps(pii, separators=(",", ":"), sort_keys=True).encode()
        sealed = AESGCM(key.material).encrypt(
            nonce, plaintext, self._aad(tenant_id, subject_id, event_id)
        )
        return EncryptedPII(
            key_id=key.key_id,
            nonce=base64.b64encode(nonce).decode(),
            ciphertext=base64.b64encode(sealed).decode(),
        )

    async def decrypt(self, envelope: EventEnvelope) -> dict[str, Any] | None:
        """The event's personal data, or None when the subject's key was destroyed.

        Raises :class:`DecryptionError` when the ciphertext was altered or moved to another
        event: that is tampering, not erasure.
        """
        if envelope.pii is None:
            return {}
        return await self.decrypt_parts(
            tenant_id=envelope.tenant_id,
            subject_id=envelope.subject_id,
            event_id=envelope.id,
            pii=envelope.pii,
        )

    async def decrypt_parts(
        self, *, tenant_id: str, subject_id: str, event_id: str, pii: EncryptedPII
    ) -> dict[str, Any] | None:
        """Like :meth:`decrypt`, for a ciphertext kept apart from its envelope (read models)."""
        key = await self.keyring.get(pii.key_id)
        if key is None:
            return None
        if (key.tenant_id, key.subject_id) != (tenant_id, subject_id):
            raise DecryptionError(f"event {event_id} names a key of another subject")
        try:
            plaintext = AESGCM(key.material).decrypt(
                base64.b64decode(pii.nonce),
                base64.b64decode(pii.ciphertext),
                self._aad(tenant_id, subject_id, event_id),
            )
        except InvalidTag as error:
            raise DecryptionError(f"personal data of event {event_id} was altered") from error
        loaded: dict[str, Any] = json.loads(plaintext)
        return loaded

    async def open_sealed(
        self, owner: Mapping[str, Any], sealed: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Decrypt what :func:`seal_of` kept, for the ``tenant_id``/``subject_id`` of ``owner``
        (the read-model document holding it); None once the subject's key is destroyed."""
        return await self.decrypt_parts(
            tenant_id=owner["tenant_id"],
            subject_id=owner["subject_id"],
            event_id=sealed["event_id"],
            pii=EncryptedPII.model_validate(sealed["pii"]),
        )

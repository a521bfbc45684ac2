"""Other servers' signing keys: fetched, verified, cached (spec: Server-Server API >
Retrieving server keys).

Keys come from the server itself (`GET /_matrix/key/v2/server`) or, when it cannot be
reached, from the configured notaries (`POST /_matrix/key/v2/query`). Every key document
must carry a valid self-signature by the server it describes; a notary's answer must
also carry the notary's valid signature (its own keys are fetched directly from it).

A key is usable for an event sent at time `ts` while `ts <= valid_until_ts` (room v5+;
older rooms pass 0) where `valid_until_ts` is the lesser of the published value and
7 days after we fetched it (spec: "Servers MUST use the lesser of this field and 7 days
into the future"); an `old_verify_keys` entry is usable until its `expired_ts`.

Core's signature checks are synchronous, so the ingest path does

    await keyring.prefetch({server: {key_id, …}, …}, minimum_valid_until_ts)
    verify_event_signatures(event, keyring.lookup)

Keys live in memory and in the database. A key we hold that is still valid is never
replaced by different key material under the same key ID (a spurious or hostile answer
from the origin or a notary cannot make us forget a good key); documents with new key
IDs are kept beside the old ones, and the notary serves all of them, those holding the
requested key IDs first (as SyTest "Key notary server must not overwrite a valid key").
Concurrent fetches for one server share one request; a server whose keys could not be fetched is not asked again for a while
(negative caching with exponential backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ranvier.core.crypto.errors import KeyFormatError, SignatureError
from ranvier.core.crypto.keys import (
    ED25519,
    SigningKey,
    VerifyKey,
    decode_verify_key_base64,
)
from ranvier.core.crypto.signing import signature_key_ids, verify_json_signature
from ranvier.core.json import InvalidJsonError, decode_json, encode_json
from ranvier.federation.errors import FederationError
from ranvier.util.clock import Clock
from ranvier.util.keyed_lock import KeyedLock

logger = logging.getLogger(__name__)

KEY_VALIDITY_CAP_MS: Final = 7 * 24 * 3600 * 1000
_MAX_NOTARY_DOCS: Final = 20


class KeyResponseError(Exception):
    """A key document is malformed or not properly signed."""


@dataclass(frozen=True, slots=True)
class ParsedKey:
    key_id: str
    verify_key: VerifyKey
    # Effective: capped at fetch time + 7 days (current keys) or expired_ts (old keys).
    valid_until_ts: int


@dataclass(frozen=True, slots=True)
class ParsedKeyDocument:
    server_name: str
    keys: tuple[ParsedKey, ...]
    document: dict[str, Any]


def _parse_key_map(raw: Any, what: str, *, old: bool, cap_ts: int) -> list[ParsedKey]:
    if raw is None and old:
        return []
    if not isinstance(raw, dict):
        raise KeyResponseError(f"'{what}' is not an object")
    keys: list[ParsedKey] = []
    for key_id, entry in raw.items():
        if not isinstance(key_id, str) or not key_id.startswith(ED25519 + ":"):
            continue  # unknown algorithms are not an error
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise KeyResponseError(f"'{what}.{key_id}' has no key")
        try:
            verify_key = decode_verify_key_base64(key_id, entry["key"])
        except KeyFormatError as e:
            raise KeyResponseError(str(e)) from None
        if old:
            expired = entry.get("expired_ts")
            if not isinstance(expired, int) or isinstance(expired, bool):
                raise KeyResponseError(f"'{what}.{key_id}' has no expired_ts")
            keys.append(ParsedKey(key_id, verify_key, expired))
        else:
            keys.append(ParsedKey(key_id, verify_key, cap_ts))
    return keys


def parse_server_key_response(
    doc: Any, expected_server: str, now_ms: int
) -> ParsedKeyDocument:
    """Validate a `/_matrix/key/v2/server`-shaped document for `expected_server`.

    It must be signed by the server itself; every signature it made must use one of its
    `verify_keys` and verify.
    """
    if not isinstance(doc, dict):
        raise KeyResponseError("key response is not an object")
    if doc.get("server_name") != expected_server:
        raise KeyResponseError(f"key response is not for {expected_server}")
    valid_until = doc.get("valid_until_ts")
    if not isinstance(valid_until, int) or isinstance(valid_until, bool):
        raise KeyResponseError("key response has no valid_until_ts")
    cap = min(valid_until, now_ms + KEY_VALIDITY_CAP_MS)
    current = _parse_key_map(
        doc.get("verify_keys"), "verify_keys", old=False, cap_ts=cap
    )
    old = _parse_key_map(
        doc.get("old_verify_keys"), "old_verify_keys", old=True, cap_ts=0
    )
    by_id = {k.key_id: k for k in current}
    signed_with = signature_key_ids(doc, expected_server)
    if not signed_with:
        raise KeyResponseError(f"key response is not signed by {expected_server}")
    for key_id in signed_with:
        key = by_id.get(key_id)
        if key is None:
            raise KeyResponseError(f"signed with {key_id}, which is not in verify_keys")
        try:
            verify_json_signature(doc, expected_server, key_id, key.verify_key)
        except SignatureError as e:
            raise KeyResponseError(str(e)) from None
    return ParsedKeyDocument(expected_server, tuple(current + old), doc)


class ServerKeyRow(Protocol):
    @property
    def key_id(self) -> str: ...
    @property
    def from_server(self) -> str: ...
    @property
    def verify_key(self) -> str: ...
    @property
    def valid_until_ts(self) -> int: ...
    @property
    def key_json(self) -> str: ...


class ServerKeyStore(Protocol):
    async def get_server_keys(self, server_name: str) -> Sequence[ServerKeyRow]: ...

    async def store_server_keys(
        self,
        server_name: str,
        from_server: str,
        fetched_ts: int,
        key_json: str,
        keys: Sequence[tuple[str, str, int]],
    ) -> None:
        """Upsert `(key_id, verify_key_base64, valid_until_ts)` rows."""
        ...


class KeyFetchClient(Protocol):
    async def get_server_keys(self, destination: str) -> Any: ...

    async def query_notary(self, notary: str, query: Mapping[str, Any]) -> Any: ...


class LocalServerKeys(Protocol):
    @property
    def server_name(self) -> str: ...
    @property
    def signing_key(self) -> SigningKey: ...

    def signed_key_response(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class KeyFetchBackoff:
    initial_ms: int = 30_000
    max_ms: int = 3600 * 1000


@dataclass(slots=True)
class _Failure:
    count: int
    retry_at: int


def _satisfied_by(
    known: Mapping[str, tuple[VerifyKey, int]], key_ids: Collection[str], ts: int
) -> bool:
    if key_ids:
        return all(k in known and known[k][1] >= ts for k in key_ids)
    return any(until >= ts for _key, until in known.values())


class Keyring:
    def __init__(
        self,
        own_keys: LocalServerKeys,
        client: KeyFetchClient,
        store: ServerKeyStore,
        clock: Clock,
        *,
        trusted_key_servers: Sequence[str] = (),
        backoff: KeyFetchBackoff = KeyFetchBackoff(),
    ) -> None:
        self._own = own_keys
        self._client = client
        self._store = store
        self._clock = clock
        self._notaries = [s for s in trusted_key_servers if s != own_keys.server_name]
        self._backoff = backoff
        # server -> key_id -> (key, valid_until_ts): the best of every source.
        self._keys: dict[str, dict[str, tuple[VerifyKey, int]]] = {}
        self._loaded: set[str] = set()
        self._failures: dict[str, _Failure] = {}
        self._locks = KeyedLock()

    # -- sync lookup (core's KeyLookup) -----------------------------------------------------
    def lookup(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> VerifyKey | None:
        """A known key of `server_name` valid at `minimum_valid_until_ts` (0: any)."""
        if server_name == self._own.server_name:
            own = self._own.signing_key.verify_key
            return own if key_id == own.key_id else None
        entry = self._keys.get(server_name, {}).get(key_id)
        if entry is None or entry[1] < minimum_valid_until_ts:
            return None
        return entry[0]

    # -- async fetching -----------------------------------------------------------------------
    async def prefetch(
        self, keys: Mapping[str, Collection[str]], minimum_valid_until_ts: int
    ) -> None:
        """Make `lookup` answer for these servers' key IDs where at all possible.

        An empty key ID collection asks for any key of that server.
        """
        await asyncio.gather(
            *(
                self._ensure(server, frozenset(ids), minimum_valid_until_ts)
                for server, ids in keys.items()
            )
        )

    async def get_verify_key(
        self, server_name: str, key_id: str, minimum_valid_until_ts: int
    ) -> VerifyKey | None:
        await self._ensure(server_name, frozenset({key_id}), minimum_valid_until_ts)
        return self.lookup(server_name, key_id, minimum_valid_until_ts)

    async def get_key_documents(
        self, server_name: str, key_ids: Collection[str], minimum_valid_until_ts: int
    ) -> list[dict[str, Any]]:
        """For the notary endpoint: the key documents `server_name` signed, as we got
        them directly from it, refreshed when they do not cover the request. Stale
        documents are still returned when the server is unreachable (spec)."""
        if server_name == self._own.server_name:
            return [self._own.signed_key_response()]
        await self._load(server_name)
        rows = await self._direct_rows(server_name)
        if not _satisfied_by(_row_keys(rows), key_ids, minimum_valid_until_ts):
            async with self._locks.lock((server_name, True)):
                rows = await self._direct_rows(server_name)
                wanted = _satisfied_by(_row_keys(rows), key_ids, minimum_valid_until_ts)
                if not wanted and not self._in_backoff(server_name):
                    if await self._fetch_direct(server_name):
                        rows = await self._direct_rows(server_name)
                    else:
                        self._note_failure(server_name)
        return _unique_documents(rows, key_ids)

    async def _direct_rows(self, server_name: str) -> list[ServerKeyRow]:
        rows = await self._store.get_server_keys(server_name)
        return [r for r in rows if r.from_server == server_name]

    async def _ensure(
        self,
        server: str,
        key_ids: frozenset[str],
        ts: int,
        *,
        direct_only: bool = False,
    ) -> None:
        if server == self._own.server_name:
            return
        await self._load(server)
        if self._satisfied(server, key_ids, ts):
            return
        # Notary keys are fetched under their own lock: a notary fetch never waits for
        # a lock that a fetch through that notary may hold.
        async with self._locks.lock((server, direct_only)):
            if self._satisfied(server, key_ids, ts) or self._in_backoff(server):
                return
            await self._fetch(server, key_ids, ts, direct_only=direct_only)
            if self._satisfied(server, key_ids, ts):
                self._failures.pop(server, None)
            else:
                self._note_failure(server)

    def _satisfied(self, server: str, key_ids: Collection[str], ts: int) -> bool:
        return _satisfied_by(self._keys.get(server, {}), key_ids, ts)

    def _in_backoff(self, server: str) -> bool:
        failure = self._failures.get(server)
        return failure is not None and failure.retry_at > self._clock.time_msec()

    def _note_failure(self, server: str) -> None:
        previous = self._failures.get(server)
        count = previous.count + 1 if previous else 1
        delay = min(self._backoff.initial_ms * 2 ** (count - 1), self._backoff.max_ms)
        self._failures[server] = _Failure(count, self._clock.time_msec() + delay)
        logger.info("no usable keys for %s; not asking again for %d ms", server, delay)

    async def _load(self, server: str) -> None:
        if server in self._loaded:
            return
        rows = await self._store.get_server_keys(server)
        self._loaded.add(server)
        for row in rows:
            try:
                key = decode_verify_key_base64(row.key_id, row.verify_key)
            except KeyFormatError:
                continue
            self._remember(server, key, row.valid_until_ts)

    def _remember(self, server: str, key: VerifyKey, valid_until_ts: int) -> None:
        known = self._keys.setdefault(server, {})
        current = known.get(key.key_id)
        if current is None or current[0] != key or current[1] < valid_until_ts:
            known[key.key_id] = (key, valid_until_ts)

    async def _fetch(
        self, server: str, key_ids: frozenset[str], ts: int, *, direct_only: bool
    ) -> None:
        if await self._fetch_direct(server) and self._satisfied(server, key_ids, ts):
            return
        if direct_only:
            return
        for notary in self._notaries:
            if notary == server:
                continue
            await self._fetch_from_notary(notary, server, key_ids, ts)
            if self._satisfied(server, key_ids, ts):
                return

    async def _fetch_direct(self, server: str) -> bool:
        try:
            doc = await self._client.get_server_keys(server)
            parsed = parse_server_key_response(doc, server, self._clock.time_msec())
        except (FederationError, KeyResponseError) as e:
            logger.info("fetching keys from %s failed: %s", server, e)
            return False
        await self._save(parsed, from_server=server)
        return True

    async def _fetch_from_notary(
        self, notary: str, server: str, key_ids: frozenset[str], ts: int
    ) -> None:
        criteria = {"minimum_valid_until_ts": ts} if ts else {}
        query = {"server_keys": {server: dict.fromkeys(key_ids, criteria)}}
        try:
            response = await self._client.query_notary(notary, query)
        except FederationError as e:
            logger.info("notary %s: key query for %s failed: %s", notary, server, e)
            return
        docs = response.get("server_keys") if isinstance(response, dict) else None
        if not isinstance(docs, list):
            logger.info("notary %s: malformed key query response", notary)
            return
        for doc in docs[:_MAX_NOTARY_DOCS]:
            if not isinstance(doc, dict) or doc.get("server_name") != server:
                continue
            try:
                parsed = parse_server_key_response(doc, server, self._clock.time_msec())
                await self._verify_notary_signature(notary, doc)
            except KeyResponseError as e:
                logger.info("notary %s: rejected keys of %s: %s", notary, server, e)
                continue
            await self._save(parsed, from_server=notary)

    async def _verify_notary_signature(self, notary: str, doc: dict[str, Any]) -> None:
        key_ids = signature_key_ids(doc, notary)
        if not key_ids:
            raise KeyResponseError(f"not signed by the notary {notary}")
        now = self._clock.time_msec()
        await self._ensure(notary, frozenset(key_ids), now, direct_only=True)
        verified = False
        for key_id in key_ids:
            key = self.lookup(notary, key_id, now)
            if key is None:
                continue
            try:
                verify_json_signature(doc, notary, key_id, key)
            except SignatureError as e:
                raise KeyResponseError(str(e)) from None
            verified = True
        if not verified:
            raise KeyResponseError(f"no known key of the notary {notary}")

    async def _save(self, parsed: ParsedKeyDocument, *, from_server: str) -> None:
        now = self._clock.time_msec()
        await self._load(parsed.server_name)
        known = self._keys.get(parsed.server_name, {})
        keys = []
        for k in parsed.keys:
            held = known.get(k.key_id)
            if held is not None and held[0] != k.verify_key and held[1] >= now:
                logger.warning(
                    "%s (via %s) answered another key for %s; keeping the valid one",
                    parsed.server_name, from_server, k.key_id,
                )  # fmt: skip
                continue
            keys.append(k)
        if not keys:
            return
        await self._store.store_server_keys(
            parsed.server_name,
            from_server,
            now,
            encode_json(parsed.document).decode(),
            [
                (k.key_id, k.verify_key.public_key_base64, k.valid_until_ts)
                for k in keys
            ],
        )
        for k in keys:
            self._remember(parsed.server_name, k.verify_key, k.valid_until_ts)


def _row_keys(rows: Sequence[ServerKeyRow]) -> dict[str, tuple[VerifyKey, int]]:
    out: dict[str, tuple[VerifyKey, int]] = {}
    for row in rows:
        try:
            key = decode_verify_key_base64(row.key_id, row.verify_key)
        except KeyFormatError:
            continue
        if row.key_id not in out or out[row.key_id][1] < row.valid_until_ts:
            out[row.key_id] = (key, row.valid_until_ts)
    return out


def _unique_documents(
    rows: Sequence[ServerKeyRow], key_ids: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Each stored document once: those holding a requested key ID first, longest
    valid first (a client reading only the first one gets the key it asked for)."""
    wanted = set(key_ids)
    ordered = sorted(rows, key=lambda r: (r.key_id not in wanted, -r.valid_until_ts))
    seen: set[str] = set()
    docs: list[dict[str, Any]] = []
    for row in ordered:
        if row.key_json in seen:
            continue
        seen.add(row.key_json)
        try:
            doc = decode_json(row.key_json)
        except InvalidJsonError:
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs

"""Room state: state groups (snapshots plus bounded delta chains), state at each event,
and the current state of each room.

A state group is an immutable room state. Most new groups are a delta of a few keys on
their predecessor; once a chain reaches `max_chain_length` deltas the next group is a full
snapshot, so reading any group touches at most `max_chain_length + 1` groups (one
recursive query). Groups are shared: every non-state event points at the group of the
state before it, so state is stored per *state change*, not per event.

Group IDs are allocated in-process (`allocate_group_id`); with several writer processes
this becomes a database sequence (the same seam as stream positions).

Sync seams: `get_current_state_ids`, `get_state_ids_at_event`,
`get_current_state_deltas`.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ranvier.core.events.event import StateKey
from ranvier.storage.database import Database
from ranvier.storage.txn import Txn
from ranvier.util.lru import LruCache

__all__ = ["EventStateGroups", "StateDeltaRow", "StateGroup", "StateStore"]

StateMap = Mapping[StateKey, str]

DEFAULT_MAX_CHAIN_LENGTH = 50


@dataclass(frozen=True, slots=True)
class StateGroup:
    id: int
    state: StateMap
    chain_length: int


@dataclass(frozen=True, slots=True)
class EventStateGroups:
    before: int | None
    after: int


@dataclass(frozen=True, slots=True)
class StateDeltaRow:
    stream_ordering: int
    room_id: str
    type: str
    state_key: str
    event_id: str | None
    prev_event_id: str | None


def _load_group_txn(txn: Txn, group_id: int) -> StateGroup | None:
    txn.execute(
        "WITH RECURSIVE chain(id, prev, n) AS ("
        " SELECT id, prev_group, 0 FROM state_groups WHERE id = ?"
        " UNION ALL SELECT g.id, g.prev_group, chain.n + 1 FROM state_groups AS g"
        " JOIN chain ON g.id = chain.prev"
        ") SELECT chain.n, chain.id, s.type, s.state_key, s.event_id FROM chain"
        " LEFT JOIN state_group_entries AS s ON s.state_group = chain.id"
        " ORDER BY chain.n DESC",
        (group_id,),
    )
    rows = txn.fetchall()
    if not rows:
        return None
    state: dict[StateKey, str] = {}
    chain_length = 0
    for n, _gid, etype, skey, event_id in rows:
        chain_length = max(chain_length, int(n))
        if etype is None:
            continue  # a group with no entries (the empty state)
        if event_id is None:
            state.pop((etype, skey), None)
        else:
            state[(etype, skey)] = event_id
    txn.execute("SELECT chain_length FROM state_groups WHERE id = ?", (group_id,))
    row = txn.fetchone()
    return StateGroup(group_id, state, int(row[0]) if row else chain_length)


def _load_groups_txn(txn: Txn, group_ids: list[int]) -> list[StateGroup]:
    groups = (_load_group_txn(txn, group_id) for group_id in group_ids)
    return [g for g in groups if g is not None]


def _event_groups_txn(txn: Txn, event_ids: list[str]) -> dict[str, EventStateGroups]:
    cond, params = txn.in_list("event_id", event_ids)
    txn.execute(
        "SELECT event_id, state_group_before, state_group_after "
        f"FROM event_state_groups WHERE {cond}",
        params,
    )
    return {
        str(r[0]): EventStateGroups(None if r[1] is None else int(r[1]), int(r[2]))
        for r in txn.fetchall()
    }


def _max_group_txn(txn: Txn) -> int:
    txn.execute("SELECT MAX(id) FROM state_groups")
    row = txn.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class StateStore:
    def __init__(
        self,
        db: Database,
        last_group_id: int,
        *,
        max_chain_length: int = DEFAULT_MAX_CHAIN_LENGTH,
        cache_size: int = 2_000,
        event_cache_size: int = 20_000,
    ) -> None:
        self._db = db
        self._group_ids = itertools.count(last_group_id + 1)
        self.max_chain_length = max_chain_length
        self._groups: LruCache[int, StateGroup] = LruCache(cache_size)
        self._event_groups: LruCache[str, EventStateGroups] = LruCache(event_cache_size)

    @classmethod
    async def open(
        cls, db: Database, *, max_chain_length: int = DEFAULT_MAX_CHAIN_LENGTH
    ) -> StateStore:
        last = await db.run_read_txn("state_groups_max_id", _max_group_txn)
        return cls(db, last, max_chain_length=max_chain_length)

    def allocate_group_id(self) -> int:
        return next(self._group_ids)

    def cache_group(self, group: StateGroup) -> None:
        """Remember a group the caller just persisted (groups are immutable)."""
        self._groups.set(group.id, group)

    # -- state groups ----------------------------------------------------------------------
    async def get_state_group(self, group_id: int) -> StateGroup | None:
        return (await self.get_state_groups([group_id])).get(group_id)

    async def get_state_groups(
        self, group_ids: Collection[int]
    ) -> dict[int, StateGroup]:
        """The groups among `group_ids` that exist; the uncached ones are loaded in one
        transaction."""
        found: dict[int, StateGroup] = {}
        missing: list[int] = []
        for group_id in dict.fromkeys(group_ids):
            cached = self._groups.get(group_id)
            if cached is not None:
                found[group_id] = cached
            else:
                missing.append(group_id)
        if missing:
            loaded = await self._db.run_read_txn(
                "get_state_groups", _load_groups_txn, missing
            )
            for group in loaded:
                self._groups.set(group.id, group)
                found[group.id] = group
        return found

    async def get_state_groups_for_events(
        self, event_ids: Collection[str]
    ) -> dict[str, EventStateGroups]:
        # Rows of `event_state_groups` are never changed once written, so found ones
        # are cached for good (absent ones are not: an outlier may get one later).
        found: dict[str, EventStateGroups] = {}
        missing: list[str] = []
        for event_id in dict.fromkeys(event_ids):
            cached = self._event_groups.get(event_id)
            if cached is not None:
                found[event_id] = cached
            else:
                missing.append(event_id)
        if missing:
            loaded = await self._db.run_read_txn(
                "get_state_groups_for_events", _event_groups_txn, missing
            )
            for event_id, groups in loaded.items():
                self._event_groups.set(event_id, groups)
            found.update(loaded)
        return found

    async def get_state_ids_at_event(
        self, event_id: str, *, before: bool = False
    ) -> StateMap | None:
        """The room state after `event_id` (or before it); None for unknown events and
        outliers."""
        groups = (await self.get_state_groups_for_events([event_id])).get(event_id)
        if groups is None:
            return None
        group_id = groups.before if before else groups.after
        if group_id is None:
            return {}
        group = await self.get_state_group(group_id)
        return None if group is None else group.state

    # -- current state ---------------------------------------------------------------------
    async def get_current_state_ids(self, room_id: str) -> dict[StateKey, str]:
        def txn_fn(txn: Txn) -> dict[StateKey, str]:
            txn.execute(
                "SELECT type, state_key, event_id FROM current_state_events "
                "WHERE room_id = ?",
                (room_id,),
            )
            return {(str(t), str(k)): str(e) for t, k, e in txn.fetchall()}

        return await self._db.run_read_txn("get_current_state_ids", txn_fn)

    async def get_current_state_event_ids(
        self, room_id: str, keys: Collection[StateKey]
    ) -> dict[StateKey, str]:
        """Current state restricted to `keys`."""

        def txn_fn(txn: Txn) -> dict[StateKey, str]:
            out: dict[StateKey, str] = {}
            for etype, skey in keys:
                txn.execute(
                    "SELECT event_id FROM current_state_events WHERE room_id = ? "
                    "AND type = ? AND state_key = ?",
                    (room_id, etype, skey),
                )
                row = txn.fetchone()
                if row is not None:
                    out[(etype, skey)] = str(row[0])
            return out

        return await self._db.run_read_txn("get_current_state_event_ids", txn_fn)

    async def get_current_state_of_type(
        self, room_ids: Collection[str], etype: str, state_key: str = ""
    ) -> dict[str, str]:
        """room_id -> event ID of the current (etype, state_key) event, for many rooms."""

        def txn_fn(txn: Txn) -> dict[str, str]:
            cond, params = txn.in_list("room_id", room_ids)
            txn.execute(
                "SELECT room_id, event_id FROM current_state_events "
                f"WHERE {cond} AND type = ? AND state_key = ?",
                [*params, etype, state_key],
            )
            return {str(r[0]): str(r[1]) for r in txn.fetchall()}

        if not room_ids:
            return {}
        return await self._db.run_read_txn("get_current_state_of_type", txn_fn)

    async def get_current_state_deltas(
        self, from_pos: int, to_pos: int, room_ids: Collection[str] | None = None
    ) -> list[StateDeltaRow]:
        """Changes of current state in `(from_pos, to_pos]`, in stream order."""

        def txn_fn(txn: Txn) -> list[StateDeltaRow]:
            sql = (
                "SELECT stream_ordering, room_id, type, state_key, event_id, prev_event_id"
                " FROM current_state_delta_stream WHERE stream_ordering > ?"
                " AND stream_ordering <= ?"
            )
            params: list[Any] = [from_pos, to_pos]
            if room_ids is not None:
                cond, extra = txn.in_list("room_id", room_ids)
                sql += f" AND {cond}"
                params += extra
            txn.execute(sql + " ORDER BY stream_ordering", params)
            return [
                StateDeltaRow(int(r[0]), r[1], r[2], r[3], r[4], r[5])
                for r in txn.fetchall()
            ]

        if from_pos >= to_pos:
            return []
        return await self._db.run_read_txn("get_current_state_deltas", txn_fn)

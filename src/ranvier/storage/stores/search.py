"""Full-text search of room events (`POST /search`, category `room_events`).

Indexed at persist time (`index_event_txn`, called for every event the persist
transaction writes): servable events' `content.body`, the `name` of `m.room.name` and
the `topic` of `m.room.topic`. Redacted events are removed (`unindex_event_txn`).

Engine-specific, as the migrations (`0011_search.*.sql`): SQLite matches with FTS5
(porter stemming, bm25 rank), PostgreSQL with an English `tsvector` and a GIN index
(`ts_rank`). Every search term is a prefix match and all terms must match. The caller
decides which rooms the reader may search (`SearchScope`): rooms they are in, and rooms
they left up to the stream position of their leave.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ranvier.core.events.event import Event
from ranvier.storage.database import Database
from ranvier.storage.stores.event_rows import EventToPersist
from ranvier.storage.txn import Txn

__all__ = [
    "SEARCH_KEYS",
    "SearchHit",
    "SearchPage",
    "SearchQuery",
    "SearchScope",
    "SearchStore",
    "index_event_txn",
    "unindex_event_txn",
]

KEY_BODY = "content.body"
KEY_NAME = "content.name"
KEY_TOPIC = "content.topic"
SEARCH_KEYS = (KEY_BODY, KEY_NAME, KEY_TOPIC)

Order = Literal["rank", "recent"]


@dataclass(frozen=True, slots=True)
class SearchScope:
    joined_rooms: Collection[str] = ()
    # Rooms the reader left: searchable up to this stream position.
    left_rooms: Mapping[str, int] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.joined_rooms and not self.left_rooms


@dataclass(frozen=True, slots=True)
class SearchHit:
    event_id: str
    room_id: str
    stream_ordering: int
    # Higher is closer.
    rank: float


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    # An approximate total: every match in scope, before visibility filtering.
    count: int
    # More matches follow this page.
    more: bool


def _indexable(ev: Event) -> list[tuple[str, str]]:
    content = ev.content
    found: list[tuple[str, Any]] = []
    if ev.state_key is None:
        found.append((KEY_BODY, content.get("body")))
    elif ev.type == "m.room.name" and ev.state_key == "":
        found.append((KEY_NAME, content.get("name")))
    elif ev.type == "m.room.topic" and ev.state_key == "":
        found.append((KEY_TOPIC, content.get("topic")))
    return [(k, v) for k, v in found if isinstance(v, str) and v.strip()]


def index_event_txn(txn: Txn, item: EventToPersist) -> None:
    if item.outlier or item.soft_failed or item.rejected_reason is not None:
        return
    ev = item.event
    for key, value in _indexable(ev):
        row = (ev.event_id, ev.room_id, ev.sender, key)
        if txn.engine_name == "postgres":
            txn.execute(
                "INSERT INTO event_search (event_id, room_id, sender, key, vector, "
                "stream_ordering, origin_server_ts) "
                "VALUES (?, ?, ?, ?, to_tsvector('english', ?), ?, ?)",
                (*row, value, item.stream_ordering, ev.origin_server_ts),
            )
            continue
        txn.execute(
            "INSERT INTO event_search (event_id, room_id, sender, key, "
            "stream_ordering, origin_server_ts) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            (*row, item.stream_ordering, ev.origin_server_ts),
        )
        fetched = txn.fetchone()
        assert fetched is not None
        txn.execute(
            "INSERT INTO event_search_fts (rowid, value) VALUES (?, ?)",
            (fetched[0], value),
        )


def unindex_event_txn(txn: Txn, event_id: str) -> None:
    """A redacted event's text is gone: it must no longer be found."""
    if txn.engine_name == "sqlite":
        txn.execute(
            "DELETE FROM event_search_fts WHERE rowid IN "
            "(SELECT id FROM event_search WHERE event_id = ?)",
            (event_id,),
        )
    txn.execute("DELETE FROM event_search WHERE event_id = ?", (event_id,))


@dataclass(frozen=True, slots=True)
class SearchQuery:
    terms: Sequence[str]
    scope: SearchScope
    keys: Collection[str]
    senders: Collection[str] | None = None
    not_senders: Collection[str] = ()
    order: Order = "rank"
    # `recent`: only events before this stream position. `rank`: rows to skip.
    before_stream: int | None = None
    offset: int = 0
    limit: int = 10


def _scope_sql(txn: Txn, query: SearchQuery, params: list[Any]) -> str:
    parts: list[str] = []
    if query.scope.joined_rooms:
        cond, p = txn.in_list("s.room_id", list(query.scope.joined_rooms))
        parts.append(cond)
        params += p
    for room_id, max_stream in sorted(query.scope.left_rooms.items()):
        parts.append("(s.room_id = ? AND s.stream_ordering <= ?)")
        params += [room_id, max_stream]
    where = "(" + " OR ".join(parts) + ")"
    kcond, kparams = txn.in_list("s.key", list(query.keys))
    where += f" AND {kcond}"
    params += kparams
    if query.senders is not None:
        scond, sparams = txn.in_list("s.sender", list(query.senders))
        where += f" AND {scond}"
        params += sparams
    if query.not_senders:
        ncond, nparams = txn.in_list("s.sender", list(query.not_senders))
        where += f" AND NOT ({ncond})"
        params += nparams
    return where


def _match_sql(txn: Txn, query: SearchQuery) -> tuple[str, str, list[Any]]:
    """FROM clause, match condition and the score expression's parameters."""
    if txn.engine_name == "postgres":
        tsquery = " & ".join(f"{t}:*" for t in query.terms)
        return (
            "event_search AS s",
            "s.vector @@ to_tsquery('english', ?)",
            [tsquery],
        )
    fts = " ".join(f'"{t}"*' for t in query.terms)
    return (
        "event_search_fts AS f JOIN event_search AS s ON s.id = f.rowid",
        "event_search_fts MATCH ?",
        [fts],
    )


def _search_txn(txn: Txn, query: SearchQuery) -> SearchPage:
    source, match, match_params = _match_sql(txn, query)
    params: list[Any] = list(match_params)
    where = f"{match} AND {_scope_sql(txn, query, params)}"
    txn.execute(f"SELECT COUNT(*) FROM {source} WHERE {where}", params)
    row = txn.fetchone()
    count = int(row[0]) if row else 0
    if txn.engine_name == "postgres":
        score = "ts_rank(s.vector, to_tsquery('english', ?))"
        score_params = list(match_params)
    else:
        # bm25 is lower for better matches; the spec's rank is higher for them.
        score = "-f.rank"
        score_params = []
    page_params: list[Any] = [*score_params, *params]
    if query.order == "recent":
        if query.before_stream is not None:
            where += " AND s.stream_ordering < ?"
            page_params.append(query.before_stream)
        order = "s.stream_ordering DESC"
        tail = " LIMIT ?"
        page_params.append(query.limit + 1)
    else:
        order = "score DESC, s.stream_ordering DESC"
        tail = " LIMIT ? OFFSET ?"
        page_params += [query.limit + 1, query.offset]
    txn.execute(
        f"SELECT s.event_id, s.room_id, s.stream_ordering, {score} AS score "
        f"FROM {source} WHERE {where} ORDER BY {order}{tail}",
        page_params,
    )
    rows = txn.fetchall()
    hits = [
        SearchHit(str(r[0]), str(r[1]), int(r[2]), float(r[3]))
        for r in rows[: query.limit]
    ]
    return SearchPage(hits, count, len(rows) > query.limit)


class SearchStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def search_events(self, query: SearchQuery) -> SearchPage:
        if query.scope.is_empty or not query.terms or not query.keys:
            return SearchPage([], 0, False)
        return await self._db.run_read_txn("search_events", _search_txn, query)

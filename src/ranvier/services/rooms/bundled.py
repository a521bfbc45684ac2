"""Server-side aggregation of relations (spec: C-S API > Forming relationships between
events > Server-side aggregation of `m.relations`).

For a batch of events about to be served, one storage transaction fetches every
aggregation (`RelationStore.get_aggregations`) and one batched event lookup loads the
events bundled in full; nothing is queried per event. Bundled, under
`unsigned.m.relations`:

* `m.thread`: `latest_event` (the thread's most recent event, in full), `count`,
  `current_user_participated` (the reader started the thread or sent into it).
* `m.replace` (spec v1.7+): the most recent valid replacement event in full, most recent
  by `origin_server_ts` with the event ID breaking ties. Valid: same sender and type as
  the original, the original is not a state event, and `m.new_content` is an object.
* `m.reference`: `chunk` of `{"event_id": …}` for events referencing this one.

Redacted relations are deleted from the index when redacted, so they drop out here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from ranvier.core.events.relations import REL_REFERENCE, REL_REPLACE, REL_THREAD
from ranvier.storage.stores.event_rows import StoredEvent
from ranvier.storage.stores.relations import Aggregations, EditCandidate

__all__ = ["AggregationSource", "RelationBundler"]

JsonDict = dict[str, Any]
# Serialises events without bundling (bundled events carry no bundles of their own).
PlainSerializer = Callable[[Sequence[StoredEvent]], Awaitable[list[JsonDict]]]
EventLoader = Callable[[Sequence[str]], Awaitable[dict[str, StoredEvent]]]


class AggregationSource(Protocol):
    async def get_aggregations(
        self, parents: Mapping[str, str], user_id: str | None
    ) -> dict[str, Aggregations]: ...


def _latest_edit(
    original: StoredEvent, edits: Sequence[EditCandidate]
) -> EditCandidate | None:
    ev = original.event
    if ev.state_key is not None:
        return None
    valid = [e for e in edits if e.sender == ev.sender and e.type == ev.type]
    if not valid:
        return None
    return max(valid, key=lambda e: (e.origin_server_ts, e.event_id))


class RelationBundler:
    def __init__(self, source: AggregationSource) -> None:
        self._source = source

    async def get_bundles(
        self,
        events: Sequence[StoredEvent],
        *,
        user_id: str | None,
        load: EventLoader,
        serialize: PlainSerializer,
    ) -> dict[str, JsonDict]:
        """`unsigned.m.relations` for those of `events` that have any, by event ID."""
        parents = {e.event_id: e for e in events if e.redacted_by is None}
        if not parents:
            return {}
        aggs = await self._source.get_aggregations(
            {pid: e.event.room_id for pid, e in parents.items()}, user_id
        )
        if not aggs:
            return {}
        edits = {
            pid: edit
            for pid, agg in aggs.items()
            if (edit := _latest_edit(parents[pid], agg.edits)) is not None
        }
        wanted = [a.thread_latest_id for a in aggs.values() if a.thread_latest_id]
        wanted += [e.event_id for e in edits.values()]
        loaded = await load(wanted) if wanted else {}
        usable = [s for s in loaded.values() if s.is_servable and s.redacted_by is None]
        serialized = dict(
            zip([s.event_id for s in usable], await serialize(usable), strict=True)
        )
        out: dict[str, JsonDict] = {}
        for pid, agg in aggs.items():
            parent = parents[pid]
            if user_id is not None and parent.event.sender == user_id:
                agg.thread_participated = True
            bundle = self._bundle(agg, edits.get(pid), serialized)
            if bundle:
                out[pid] = bundle
        return out

    @staticmethod
    def _bundle(
        agg: Aggregations,
        edit: EditCandidate | None,
        serialized: dict[str, JsonDict],
    ) -> JsonDict:
        bundle: JsonDict = {}
        latest = serialized.get(agg.thread_latest_id or "")
        if agg.thread_count and latest is not None:
            bundle[REL_THREAD] = {
                "latest_event": latest,
                "count": agg.thread_count,
                "current_user_participated": agg.thread_participated,
            }
        replacement = serialized.get(edit.event_id) if edit is not None else None
        if replacement is not None and isinstance(
            replacement.get("content", {}).get("m.new_content"), dict
        ):
            bundle[REL_REPLACE] = replacement
        if agg.references:
            bundle[REL_REFERENCE] = {
                "chunk": [{"event_id": eid} for eid in agg.references]
            }
        return bundle

"""Sync filters: upload, fetch, and resolve `/sync`'s `filter` parameter (spec: Filtering).

Error mapping follows Synapse: an invalid uploaded filter is 400 M_BAD_JSON; on `/sync`,
inline JSON that does not parse is M_NOT_JSON, one that fails validation M_BAD_JSON, and
an unknown filter ID M_INVALID_PARAM.
"""

from __future__ import annotations

from typing import Any

from ranvier.core.errors import (
    MatrixError,
    bad_json,
    invalid_param,
    not_found,
    not_json,
)
from ranvier.core.filters import DEFAULT_FILTER, Filter, FilterError, parse_filter
from ranvier.core.json import InvalidJsonError, decode_json
from ranvier.storage.stores.filters import FilterStore

JsonDict = dict[str, Any]

MAX_FILTER_JSON_BYTES = 64 * 1024


def _parse_id(filter_id: str) -> int | None:
    if not (filter_id.isascii() and filter_id.isdigit()) or len(filter_id) > 18:
        return None
    return int(filter_id)


class FilterService:
    def __init__(self, store: FilterStore) -> None:
        self._store = store

    async def create_filter(self, user_id: str, raw: JsonDict) -> str:
        try:
            parse_filter(raw)
        except FilterError as e:
            raise bad_json(f"Invalid filter: {e}") from None
        return str(await self._store.add_filter(user_id, raw))

    async def get_filter_json(self, user_id: str, filter_id: str) -> JsonDict:
        fid = _parse_id(filter_id)
        if fid is None:
            raise invalid_param("Filter IDs are integers.")
        raw = await self._store.get_filter(user_id, fid)
        if raw is None:
            raise not_found("No such filter.")
        return raw

    async def resolve_sync_filter(self, user_id: str, param: str | None) -> Filter:
        if param is None or param == "":
            return DEFAULT_FILTER
        if param.startswith("{"):
            if len(param) > MAX_FILTER_JSON_BYTES:
                raise MatrixError(400, "M_TOO_LARGE", "The filter is too large.")
            try:
                raw = decode_json(param)
            except InvalidJsonError:
                raise not_json("`filter` must be valid JSON.") from None
        else:
            fid = _parse_id(param)
            found = (
                await self._store.get_filter(user_id, fid) if fid is not None else None
            )
            if found is None:
                raise invalid_param("No such filter.")
            raw = found
        try:
            return parse_filter(raw)
        except FilterError as e:
            raise bad_json(f"`filter` is invalid: {e}") from None

"""User directory search (Client-Server API > User directory).

A requester finds the users who share a room with them and the members of public
rooms (Synapse's default, `search_all_users: false`). Each word of the search term
must be a case-insensitive prefix of a word of the user ID's localpart or of the
display name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from ranvier.storage.stores.user_directory import DirectoryEntry

_WORD = re.compile(r"\w+", re.UNICODE)


class VisibleUsers(Protocol):
    async def get_visible_users(self, requester: str) -> list[DirectoryEntry]: ...


@dataclass(frozen=True, slots=True)
class DirectorySearchResult:
    results: list[DirectoryEntry]
    limited: bool


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _localpart(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0]


def matches(entry: DirectoryEntry, terms: list[str]) -> bool:
    words = _words(_localpart(entry.user_id))
    if entry.display_name:
        words += _words(entry.display_name)
    return all(any(w.startswith(t) for w in words) for t in terms)


def _rank(entry: DirectoryEntry, terms: list[str]) -> tuple[bool, bool, bool, str]:
    # Localpart prefix matches first, then users with a profile, as Synapse ranks them.
    local = _localpart(entry.user_id).casefold()
    return (
        not local.startswith(terms[0]),
        entry.display_name is None,
        entry.avatar_url is None,
        entry.user_id,
    )


class UserDirectoryService:
    def __init__(self, users: VisibleUsers) -> None:
        self._users = users

    async def search_users(
        self, requester: str, search_term: str, limit: int
    ) -> DirectorySearchResult:
        terms = _words(search_term)
        if not terms or limit <= 0:
            return DirectorySearchResult([], limited=False)
        found = [
            e
            for e in await self._users.get_visible_users(requester)
            if matches(e, terms)
        ]
        found.sort(key=lambda e: _rank(e, terms))
        return DirectorySearchResult(found[:limit], limited=len(found) > limit)

"""Glob-style matching of push rule patterns (spec: Appendices > Glob-style matching).

`*` matches zero or more characters, `?` exactly one; matching is case-insensitive. A
pattern matches the whole value, except against `content.body`, where it matches a
"word": a substring bounded by the start or end of the value or by a character outside
`[A-Za-z0-9_]` (spec: `event_match` condition).

Patterns come from users, so matching must stay cheap whatever they write: no
backtracking regex (Python's `re` is exponential on `a*a*a*...b`). A pattern is cut at
its `*` runs into fixed-length pieces (literals and `?`); pieces are placed leftmost
one after the other, which is optimal because the gaps between them are unbounded.
That is O(len(value) * len(pattern)) at worst.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

Matcher = Callable[[str], bool]


def _is_word_char(ch: str) -> bool:
    return ch == "_" or ("a" <= ch <= "z") or ("0" <= ch <= "9")


@dataclass(frozen=True, slots=True)
class _Piece:
    """A fixed-length piece: literal characters and `?`."""

    text: str
    regex: re.Pattern[str] | None  # None: no `?`, plain substring search

    def __len__(self) -> int:
        return len(self.text)

    def match_at(self, value: str, pos: int) -> bool:
        if pos < 0 or pos + len(self.text) > len(value):
            return False
        if self.regex is None:
            return value.startswith(self.text, pos)
        return self.regex.match(value, pos) is not None

    def find(self, value: str, start: int) -> int:
        """Leftmost position >= start where the piece matches, or -1."""
        if self.regex is None:
            return value.find(self.text, start)
        found = self.regex.search(value, start)
        return found.start() if found else -1


def _piece(text: str) -> _Piece:
    if "?" not in text:
        return _Piece(text, None)
    body = "".join("." if c == "?" else re.escape(c) for c in text)
    return _Piece(text, re.compile(body, re.DOTALL))


@dataclass(frozen=True, slots=True)
class _Glob:
    # pieces[0] and pieces[-1] are anchored; gaps[i] is the minimum length of the
    # unbounded gap before pieces[i + 1] (from `?` inside a `*` run).
    pieces: tuple[_Piece, ...]
    gaps: tuple[int, ...]
    left_edge_is_word: bool
    right_edge_is_word: bool

    @property
    def has_star(self) -> bool:
        return bool(self.gaps)

    def _middle(self, value: str, pos: int, end: int) -> int | None:
        """Place the middle pieces leftmost after `pos`; the position after the last
        one, or None if they do not fit before `end`."""
        for gap, piece in zip(self.gaps[:-1], self.pieces[1:-1], strict=True):
            found = piece.find(value, pos + gap)
            if found < 0 or found + len(piece) > end:
                return None
            pos = found + len(piece)
        return pos

    def whole(self, value: str) -> bool:
        first = self.pieces[0]
        if not self.has_star:
            return len(value) == len(first) and first.match_at(value, 0)
        last = self.pieces[-1]
        end = len(value) - len(last)
        if (
            not first.match_at(value, 0)
            or end < len(first)
            or not last.match_at(value, end)
        ):
            return False
        pos = self._middle(value, len(first), end)
        return pos is not None and end - pos >= self.gaps[-1]

    def _left_ok(self, value: str, pos: int) -> bool:
        return (
            not self.left_edge_is_word or pos == 0 or not _is_word_char(value[pos - 1])
        )

    def _right_ok(self, value: str, pos: int) -> bool:
        return (
            not self.right_edge_is_word
            or pos == len(value)
            or not _is_word_char(value[pos])
        )

    def _starts(self, value: str) -> list[int]:
        first = self.pieces[0]
        out = []
        pos = first.find(value, 0)
        while pos >= 0:
            if self._left_ok(value, pos):
                out.append(pos)
            pos = first.find(value, pos + 1)
        return out

    def word(self, value: str) -> bool:
        first = self.pieces[0]
        if not self.has_star:
            return any(
                self._right_ok(value, a + len(first)) for a in self._starts(value)
            )
        starts = self._starts(value)
        if not starts:
            return False
        # The leftmost start leaves the most room for everything after it.
        pos = self._middle(value, starts[0] + len(first), len(value))
        if pos is None:
            return False
        last = self.pieces[-1]
        q = last.find(value, pos + self.gaps[-1])
        while q >= 0:
            if self._right_ok(value, q + len(last)):
                return True
            q = last.find(value, q + 1)
        return False


def _parse(pattern: str) -> _Glob:
    pieces: list[_Piece] = []
    gaps: list[int] = []
    current: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] != "*":
            current.append(pattern[i])
            i += 1
            continue
        # A run of wildcards containing a star: `?` in it set its minimum length.
        # `?`s just before the star belong to the run as well.
        while current and current[-1] == "?":
            current.pop()
            i -= 1
        j = i
        while j < len(pattern) and pattern[j] in "*?":
            j += 1
        pieces.append(_piece("".join(current)))
        gaps.append(pattern[i:j].count("?"))
        current = []
        i = j
    pieces.append(_piece("".join(current)))
    edge_l = pattern[:1]
    edge_r = pattern[-1:]
    return _Glob(
        tuple(pieces),
        tuple(gaps),
        bool(edge_l) and (edge_l in "*?" or _is_word_char(edge_l)),
        bool(edge_r) and (edge_r in "*?" or _is_word_char(edge_r)),
    )


@functools.lru_cache(maxsize=8192)
def compile_glob(pattern: str, *, words: bool = False) -> Matcher:
    """A case-insensitive matcher for `pattern` (whole value, or words of it)."""
    glob = _parse(pattern.lower())
    if words:
        if not pattern:
            return lambda value: False
        return lambda value: glob.word(value.lower())
    return lambda value: glob.whole(value.lower())

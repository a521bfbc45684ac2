"""Application-service registrations: parsing, validation and namespace matching (pure).

Spec: Application Service API > Registration. A registration is a YAML document the
operator installs; the homeserver reads it at start-up. This module turns the decoded
document into an `AppService` and checks a set of them against each other, raising
`AppServiceConfigError` with a message that names the file and the field.

Regexes are matched from the start of the string (`re.match`), as Synapse does, so
registrations written for Synapse (`@irc_.*:example.org`, often without `$`) behave the
same here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NAMESPACE_KINDS = ("users", "aliases", "rooms")
MSC2409_PUSH_EPHEMERAL = "de.sorunome.msc2409.push_ephemeral"
MSC3202 = "org.matrix.msc3202"
MSC4190 = "io.element.msc4190"


class AppServiceConfigError(ValueError):
    """A registration file is invalid, or conflicts with another one."""


@dataclass(frozen=True, slots=True)
class Namespace:
    regex: re.Pattern[str]
    exclusive: bool

    def matches(self, value: str) -> bool:
        return self.regex.match(value) is not None


@dataclass(frozen=True, slots=True)
class AppService:
    id: str
    # None: the service only acts on the homeserver and receives nothing.
    url: str | None
    as_token: str
    hs_token: str
    sender_localpart: str
    sender: str
    users: tuple[Namespace, ...] = ()
    aliases: tuple[Namespace, ...] = ()
    rooms: tuple[Namespace, ...] = ()
    rate_limited: bool = True
    protocols: tuple[str, ...] = ()
    receive_ephemeral: bool = False
    msc3202: bool = False
    msc4190: bool = False
    source: str = field(default="", compare=False)

    def is_user_in_namespace(self, user_id: str) -> bool:
        """May this service act as `user_id`? Its sender always; others in `users`."""
        return user_id == self.sender or any(n.matches(user_id) for n in self.users)

    def is_exclusive_user(self, user_id: str) -> bool:
        return user_id == self.sender or any(
            n.exclusive and n.matches(user_id) for n in self.users
        )

    def is_exclusive_alias(self, alias: str) -> bool:
        return any(n.exclusive and n.matches(alias) for n in self.aliases)

    def is_interested_in_alias(self, alias: str) -> bool:
        return any(n.matches(alias) for n in self.aliases)

    def is_interested_in_room(self, room_id: str) -> bool:
        return any(n.matches(room_id) for n in self.rooms)

    def is_interested_in_event(
        self,
        *,
        room_id: str,
        sender: str,
        event_type: str,
        state_key: str | None,
        members: Iterable[str] = (),
    ) -> bool:
        """Spec: events in rooms of interest, sent by users of interest, or (for
        membership events) about users of interest; and any event of a room one of
        the service's users is joined to."""
        if self.is_interested_in_room(room_id) or self.is_user_in_namespace(sender):
            return True
        if (
            event_type == "m.room.member"
            and state_key is not None
            and self.is_user_in_namespace(state_key)
        ):
            return True
        return any(self.is_user_in_namespace(m) for m in members)


def _error(source: str, message: str) -> AppServiceConfigError:
    return AppServiceConfigError(f"{source}: {message}")


def _required_str(doc: Mapping[str, Any], key: str, source: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str) or not value:
        raise _error(source, f"'{key}' is required and must be a non-empty string")
    return value


def _optional_bool(
    doc: Mapping[str, Any], key: str, default: bool, source: str
) -> bool:
    value = doc.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _error(source, f"'{key}' must be true or false")
    return value


def _parse_namespace(item: Any, where: str, source: str) -> Namespace:
    if not isinstance(item, Mapping):
        raise _error(source, f"{where} must be a mapping with 'regex' and 'exclusive'")
    regex = item.get("regex")
    if not isinstance(regex, str) or not regex:
        raise _error(source, f"{where}.regex must be a non-empty string")
    exclusive = item.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise _error(source, f"{where}.exclusive must be true or false")
    try:
        compiled = re.compile(regex)
    except re.error as e:
        raise _error(
            source, f"{where}.regex {regex!r} is not a valid regex: {e}"
        ) from None
    return Namespace(compiled, exclusive)


def _parse_namespaces(
    doc: Mapping[str, Any], source: str
) -> dict[str, tuple[Namespace, ...]]:
    raw = doc.get("namespaces") or {}
    if not isinstance(raw, Mapping):
        raise _error(source, "'namespaces' must be a mapping of users/aliases/rooms")
    unknown = set(raw) - set(NAMESPACE_KINDS)
    if unknown:
        raise _error(source, f"unknown namespace kind(s): {', '.join(sorted(unknown))}")
    out: dict[str, tuple[Namespace, ...]] = {}
    for kind in NAMESPACE_KINDS:
        items = raw.get(kind) or []
        if not isinstance(items, list):
            raise _error(source, f"namespaces.{kind} must be a list")
        out[kind] = tuple(
            _parse_namespace(item, f"namespaces.{kind}[{i}]", source)
            for i, item in enumerate(items)
        )
    return out


def _parse_url(doc: Mapping[str, Any], source: str) -> str | None:
    if "url" not in doc:
        raise _error(source, "'url' is required (use null for a service without one)")
    url = doc["url"]
    if url is None:
        return None
    if not isinstance(url, str) or not re.match(r"https?://[^/]+", url):
        raise _error(source, f"'url' must be an http(s) URL or null, not {url!r}")
    return url.rstrip("/")


def _parse_protocols(doc: Mapping[str, Any], source: str) -> tuple[str, ...]:
    protocols = doc.get("protocols") or []
    if not isinstance(protocols, list) or not all(
        isinstance(p, str) for p in protocols
    ):
        raise _error(source, "'protocols' must be a list of strings")
    return tuple(protocols)


def parse_registration(doc: Any, server_name: str, source: str) -> AppService:
    """One decoded registration document; `source` (the file name) prefixes errors."""
    if not isinstance(doc, Mapping):
        raise _error(source, "a registration must be a YAML mapping")
    sender_localpart = _required_str(doc, "sender_localpart", source)
    namespaces = _parse_namespaces(doc, source)
    receive_ephemeral = _optional_bool(doc, "receive_ephemeral", False, source)
    receive_ephemeral = _optional_bool(
        doc, MSC2409_PUSH_EPHEMERAL, receive_ephemeral, source
    )
    return AppService(
        id=_required_str(doc, "id", source),
        url=_parse_url(doc, source),
        as_token=_required_str(doc, "as_token", source),
        hs_token=_required_str(doc, "hs_token", source),
        sender_localpart=sender_localpart,
        sender=f"@{sender_localpart}:{server_name}",
        users=namespaces["users"],
        aliases=namespaces["aliases"],
        rooms=namespaces["rooms"],
        rate_limited=_optional_bool(doc, "rate_limited", True, source),
        protocols=_parse_protocols(doc, source),
        receive_ephemeral=receive_ephemeral,
        msc3202=_optional_bool(doc, MSC3202, False, source),
        msc4190=_optional_bool(doc, MSC4190, False, source),
        source=source,
    )


def _check_unique(services: Sequence[AppService]) -> None:
    seen: dict[str, AppService] = {}
    for svc in services:
        if svc.as_token == svc.hs_token:
            raise _error(svc.source, "'as_token' and 'hs_token' must differ")
        for what, value in (
            ("id", svc.id),
            ("as_token", svc.as_token),
            ("hs_token", svc.hs_token),
            ("sender_localpart", svc.sender_localpart),
        ):
            # Tokens share one key space: an hs_token equal to another service's
            # as_token would let one service impersonate the other.
            key = f"token:{value}" if what.endswith("_token") else f"{what}:{value}"
            other = seen.get(key)
            if other is not None:
                raise _error(
                    svc.source, f"{what} is the same as in {other.source} ({other.id})"
                )
            seen[key] = svc


def _check_exclusive_overlap(services: Sequence[AppService]) -> None:
    """Two services may not both claim the same IDs exclusively. Whether two regexes
    overlap is undecidable in general, so this catches what can be decided: the same
    regex claimed exclusively twice, and a service's sender inside another service's
    exclusive user namespace."""
    for i, a in enumerate(services):
        for b in services[i + 1 :]:
            for kind in NAMESPACE_KINDS:
                ours = {n.regex.pattern for n in getattr(a, kind) if n.exclusive}
                theirs = {n.regex.pattern for n in getattr(b, kind) if n.exclusive}
                both = ours & theirs
                if both:
                    raise _error(
                        b.source,
                        f"exclusive {kind} namespace {sorted(both)[0]!r} is also "
                        f"claimed exclusively by {a.source} ({a.id})",
                    )
            for x, y in ((a, b), (b, a)):
                if any(n.exclusive and n.matches(y.sender) for n in x.users):
                    raise _error(
                        y.source,
                        f"sender {y.sender} is in the exclusive user namespace of "
                        f"{x.source} ({x.id})",
                    )


def validate_services(services: Sequence[AppService]) -> None:
    _check_unique(services)
    _check_exclusive_overlap(services)


class AppServiceRegistry:
    """The configured services, looked up by token and by the IDs they claim."""

    def __init__(self, services: Sequence[AppService]) -> None:
        validate_services(services)
        self.services = tuple(services)
        self._by_as_token = {s.as_token: s for s in services}
        self._by_id = {s.id: s for s in services}

    def by_as_token(self, token: str) -> AppService | None:
        return self._by_as_token.get(token)

    def by_id(self, service_id: str) -> AppService | None:
        return self._by_id.get(service_id)

    def exclusive_user_owner(self, user_id: str) -> AppService | None:
        return next((s for s in self.services if s.is_exclusive_user(user_id)), None)

    def is_exclusive_user(self, user_id: str) -> bool:
        return self.exclusive_user_owner(user_id) is not None

    def exclusive_alias_owner(self, alias: str) -> AppService | None:
        return next((s for s in self.services if s.is_exclusive_alias(alias)), None)

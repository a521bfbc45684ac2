"""Application-service registration files: parsing, start-up validation errors, and
namespace matching."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier.core.appservice import (
    AppServiceConfigError,
    AppServiceRegistry,
    parse_registration,
)

SERVER = "example.org"


def registration(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": "irc",
        "url": "http://127.0.0.1:9999",
        "as_token": "as-secret",
        "hs_token": "hs-secret",
        "sender_localpart": "ircbot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": "@irc_.*:example.org"}],
            "aliases": [{"exclusive": True, "regex": "#irc_.*:example.org"}],
            "rooms": [{"exclusive": False, "regex": "!bridged.*"}],
        },
    }
    doc.update(overrides)
    return doc


def test_a_full_registration_parses() -> None:
    svc = parse_registration(
        registration(
            rate_limited=False,
            protocols=["irc"],
            **{"de.sorunome.msc2409.push_ephemeral": True, "io.element.msc4190": True},
        ),
        SERVER,
        "irc.yaml",
    )
    assert svc.sender == "@ircbot:example.org"
    assert svc.url == "http://127.0.0.1:9999"
    assert not svc.rate_limited
    assert svc.receive_ephemeral
    assert svc.msc4190
    assert svc.protocols == ("irc",)
    assert svc.is_user_in_namespace("@irc_alice:example.org")
    assert svc.is_user_in_namespace("@ircbot:example.org")
    assert not svc.is_user_in_namespace("@alice:example.org")
    assert svc.is_exclusive_user("@irc_alice:example.org")
    assert svc.is_exclusive_alias("#irc_chan:example.org")
    assert svc.is_interested_in_room("!bridged123:example.org")


def test_url_may_be_null_but_not_missing() -> None:
    assert parse_registration(registration(url=None), SERVER, "a.yaml").url is None
    doc = registration()
    del doc["url"]
    with pytest.raises(AppServiceConfigError, match=r"a\.yaml: 'url' is required"):
        parse_registration(doc, SERVER, "a.yaml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": ""}, "'id' is required"),
        ({"as_token": None}, "'as_token' is required"),
        ({"url": "ftp://x"}, "'url' must be an http"),
        ({"rate_limited": "no"}, "'rate_limited' must be true or false"),
        (
            {"namespaces": {"users": [{"exclusive": True, "regex": "@irc_[:x"}]}},
            r"namespaces\.users\[0\]\.regex .* is not a valid regex",
        ),
        ({"namespaces": {"people": []}}, "unknown namespace kind"),
        ({"namespaces": {"users": "x"}}, r"namespaces\.users must be a list"),
        ({"protocols": "irc"}, "'protocols' must be a list"),
    ],
)
def test_invalid_fields_are_named(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(AppServiceConfigError, match=message):
        parse_registration(registration(**overrides), SERVER, "bad.yaml")


def _second(**overrides: Any) -> Any:
    base = {
        "id": "slack",
        "as_token": "as-2",
        "hs_token": "hs-2",
        "sender_localpart": "slackbot",
        "namespaces": {"users": [{"exclusive": True, "regex": "@slack_.*"}]},
    }
    base.update(overrides)
    return parse_registration(registration(**base), SERVER, "slack.yaml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"id": "irc"}, "id is the same as in irc.yaml"),
        ({"as_token": "as-secret"}, "as_token is the same as in irc.yaml"),
        # A service's hs_token equal to another's as_token would let it impersonate.
        ({"hs_token": "as-secret"}, "hs_token is the same as in irc.yaml"),
        ({"sender_localpart": "ircbot"}, "sender_localpart is the same"),
        (
            {
                "namespaces": {
                    "users": [{"exclusive": True, "regex": "@irc_.*:example.org"}]
                }
            },
            "exclusive users namespace .* also claimed exclusively by irc.yaml",
        ),
        ({"sender_localpart": "irc_bot"}, "sender @irc_bot:example.org is in the excl"),
    ],
)
def test_conflicting_services_are_refused(
    overrides: dict[str, Any], message: str
) -> None:
    first = parse_registration(registration(), SERVER, "irc.yaml")
    with pytest.raises(AppServiceConfigError, match=message):
        AppServiceRegistry([first, _second(**overrides)])


def test_as_and_hs_token_must_differ() -> None:
    svc = parse_registration(registration(hs_token="as-secret"), SERVER, "x.yaml")
    with pytest.raises(AppServiceConfigError, match="must differ"):
        AppServiceRegistry([svc])


def test_non_exclusive_overlap_and_sender_outside_namespace_are_fine() -> None:
    first = parse_registration(registration(), SERVER, "irc.yaml")
    second = _second(
        namespaces={"users": [{"exclusive": False, "regex": "@irc_.*:example.org"}]}
    )
    registry = AppServiceRegistry([first, second])
    assert registry.exclusive_user_owner("@irc_x:example.org") is first
    assert registry.is_exclusive_user("@slackbot:example.org")  # senders are reserved
    assert not registry.is_exclusive_user("@alice:example.org")
    assert registry.by_as_token("as-2") is second
    assert registry.by_as_token("hs-2") is None


def test_event_interest() -> None:
    svc = parse_registration(registration(), SERVER, "irc.yaml")

    def interested(**kw: Any) -> bool:
        args: dict[str, Any] = {
            "room_id": "!r:example.org",
            "sender": "@alice:example.org",
            "event_type": "m.room.message",
            "state_key": None,
        }
        args.update(kw)
        return svc.is_interested_in_event(**args)

    assert not interested()
    assert interested(sender="@irc_bob:example.org")
    assert interested(room_id="!bridged1:example.org")
    assert interested(event_type="m.room.member", state_key="@irc_bob:example.org")
    assert interested(members=["@alice:example.org", "@irc_bob:example.org"])

"""Every version `/versions` advertises is backed by routes: each endpoint that version
defines in a module a web client must have (the spec's feature-profile table, "Web"
column) and does not deprecate is routed on the client listener, i.e. is not answered
404/405 `M_UNRECOGNIZED` by the router.

Inputs: `tests/data/spec/endpoint_history.json` (which method+path exists in which
version), the bundled OpenAPI (`x-module-file` of each operation),
`api_sections.json` (module of each file) and `module_profiles.json`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from ranvier.api.client.versions import SUPPORTED_VERSIONS, UNSTABLE_FEATURES
from ranvier.api.http import HttpSettings, build_http_app
from ranvier.app.homeserver import build_homeserver
from ranvier.config.load import load_config
from tests.core.spec_vectors import SPEC_DIR
from tests.helpers.homeserver import write_test_config

# Endpoints a required module defines that this server answers with a documented
# "not provided" instead of a route, each with the spec's permission to do so.
NOT_ROUTED: dict[str, str] = {
    # Spec (Server Discovery > support): a server without support contacts "SHOULD"
    # answer 404; Synapse does the same unless `support` is configured.
    "GET /.well-known/matrix/support": "optional contact information",
    # Spec (OAuth 2.0 API > Server metadata discovery): a server without the OAuth
    # 2.0 API answers 404 M_UNRECOGNIZED, which is what the router does.
    "GET /_matrix/client/v1/auth_metadata": "no OAuth 2.0 API (404 is the spec's answer)",
}

# Values for path parameters where a placeholder would not do.
PARAM_VALUES = {"scope": "global", "kind": "override", "ruleId": ".m.rule.master"}


@cache
def _load(name: str) -> Any:
    with (SPEC_DIR / name).open(encoding="utf-8") as f:
        return json.load(f)


def _module_of(method: str, path: str) -> tuple[str | None, str | None]:
    """(document, module) of an operation; (None, None) if the bundled spec lacks it."""
    op = _load("openapi/client-server.json")["paths"].get(path, {}).get(method.lower())
    if op is None:
        return None, None
    sections = _load("api_sections.json").get(op.get("x-module-file", ""), [])
    if not sections:
        return None, None
    return sections[0]["document"], sections[0]["module"]


def _is_required(method: str, path: str) -> bool:
    document, module = _module_of(method, path)
    if document is not None and document != "Client-Server API":
        return False  # application-service extensions
    if module is None:
        return True  # the core API
    profiles: dict[str, str] = {
        m["module"].casefold(): m["Web"]
        for m in _load("module_profiles.json")["modules"]
    }
    return profiles.get(module.casefold(), "Required") == "Required"


def required_endpoints(version: str) -> Iterator[tuple[str, str]]:
    history = _load("endpoint_history.json")
    order = history["versions"]
    at = order.index(version)
    for key, info in history["endpoints"].items():
        if info["api"] != "client-server":
            continue
        if not order.index(info["first"]) <= at <= order.index(info["last"]):
            continue
        if version in info["deprecated_in"] or key in NOT_ROUTED:
            continue
        method, path = key.split(" ", 1)
        if _is_required(method, path):
            yield method, path


def concrete(path: str) -> str:
    return re.sub(
        r"\{(\w+)\}", lambda m: PARAM_VALUES.get(m.group(1), f"x{m.group(1)}"), path
    )


async def _client_app(tmp_path: Path) -> web.Application:
    paths = write_test_config(
        tmp_path, overrides={"media": {"url_preview": {"enabled": True}}}
    )
    hs = await build_homeserver(load_config(paths, {}))
    try:
        return build_http_app(
            hs.endpoints_for(["client", "media"]),
            authenticator=None,
            limiter=None,
            settings=HttpSettings(max_body_size=1024),
        )
    finally:
        await hs.stop()


async def _unrouted(app: web.Application, version: str) -> list[str]:
    missing = []
    for method, path in required_endpoints(version):
        match = await app.router.resolve(make_mocked_request(method, concrete(path)))
        if match.http_exception is not None:
            missing.append(f"{method} {path}")
    return missing


def test_required_endpoints_are_computed() -> None:
    # The classification can fail: core endpoints are in, optional modules are out.
    v15 = set(required_endpoints("v1.5"))
    assert ("GET", "/_matrix/client/v3/sync") in v15
    assert ("POST", "/_matrix/client/v3/rooms/{roomId}/upgrade") in v15
    assert ("POST", "/_matrix/client/v3/search") not in v15  # Server Side Search
    assert ("GET", "/_matrix/client/v3/events") not in v15  # deprecated
    assert ("GET", "/_matrix/client/v1/room_summary/{roomIdOrAlias}") not in v15
    assert ("GET", "/_matrix/client/v1/room_summary/{roomIdOrAlias}") in set(
        required_endpoints("v1.15")
    )


async def test_advertised_versions_are_routed(tmp_path: Path) -> None:
    app = await _client_app(tmp_path)
    missing = {v: await _unrouted(app, v) for v in SUPPORTED_VERSIONS}
    assert missing == {v: [] for v in SUPPORTED_VERSIONS}


async def test_router_check_detects_a_missing_route(tmp_path: Path) -> None:
    app = await _client_app(tmp_path)
    match = await app.router.resolve(
        make_mocked_request("POST", "/_matrix/client/v3/not/an/endpoint")
    )
    assert match.http_exception is not None


@pytest.mark.parametrize("version", ["v1.1", "v1.5"])
def test_element_minimum_is_advertised(version: str) -> None:
    # matrix-js-sdk (src/version-support.ts) refuses servers without
    # MINIMUM_MATRIX_VERSION = "v1.5"; Element Web needs it to start at all.
    assert version in SUPPORTED_VERSIONS


async def test_unstable_features_are_routed(tmp_path: Path) -> None:
    app = await _client_app(tmp_path)
    routes = {
        "org.matrix.msc3814": (
            "GET",
            "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device",
        ),
        "org.matrix.msc3827.stable": ("POST", "/_matrix/client/v3/publicRooms"),
        "org.matrix.simplified_msc3575": (
            "POST",
            "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
        ),
        "uk.half-shot.msc2666.query_mutual_rooms": (
            "GET",
            "/_matrix/client/unstable/uk.half-shot.msc2666/user/mutual_rooms",
        ),
        "uk.half-shot.msc2666.query_mutual_rooms.stable": (
            "GET",
            "/_matrix/client/v1/mutual_rooms",
        ),
        "org.matrix.msc4143": (
            "GET",
            "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports",
        ),
    }
    assert set(UNSTABLE_FEATURES) == set(routes)
    for method, path in routes.values():
        match = await app.router.resolve(make_mocked_request(method, path))
        assert match.http_exception is None, path

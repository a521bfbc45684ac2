"""GET /_matrix/client/versions — the spec versions and unstable features we serve.

A version is listed only when every endpoint it defines in a module a web client must
have (the spec's feature profiles) is served; `tests/api/test_versions_coverage.py`
checks this against the spec's endpoint history. What each version added that a
server must answer:

* v1.1: the base API (rooms, sync, profiles, E2EE keys, push rules, media, upgrades,
  reporting, user directory, TURN, third-party identifiers and networks)
* v1.2: registration-token validity, spaces hierarchy (optional module), the
  `room_types` filter of /publicRooms
* v1.3: /relations, /refresh
* v1.4: /threads (optional module), threaded receipts and notification counts
* v1.5: nothing new for servers; matrix-js-sdk's MINIMUM_MATRIX_VERSION, without which
  Element Web refuses to start
* v1.6: /timestamp_to_event
* v1.7: /login/get_token, asynchronous uploads (/media/v1/create, PUT /upload)
* v1.10: /.well-known/matrix/support (from `server_support`; 404 when unset)
* v1.11: authenticated media (/_matrix/client/v1/media/*)
* v1.12: push rules without the `{scope}` parameter (/pushrules/global/...)
* v1.13: POST /rooms/{roomId}/report
* v1.14: POST /users/{userId}/report; GET /rooms/{roomId}/initialSync (no longer
  deprecated)
* v1.15: GET /room_summary/{roomIdOrAlias}; OAuth 2.0 server metadata (404: this
  server has no OAuth 2.0 API, the spec's answer for that case)

Not listed yet: v1.16 and later. Their required endpoints are routed (except the
policy-server well-known of v1.18, which only policy servers serve), but the
behaviour changes they bring have not been reviewed one by one; routes alone do not
make a version.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest

SUPPORTED_VERSIONS: tuple[str, ...] = tuple(f"v1.{n}" for n in range(1, 16))
UNSTABLE_FEATURES: dict[str, bool] = {
    # Dehydrated devices (api/client/dehydrated_device.py, unstable endpoints).
    "org.matrix.msc3814": True,
    # /publicRooms `filter.room_types` (services/rooms/aliases.py).
    "org.matrix.msc3827.stable": True,
    # Mutual rooms (api/client/spaces.py): the unstable path and, as the stable
    # /v1/mutual_rooms is spec v1.19 (not listed yet), its ".stable" flag.
    "uk.half-shot.msc2666.query_mutual_rooms": True,
    "uk.half-shot.msc2666.query_mutual_rooms.stable": True,
    # MatrixRTC transports (api/client/rtc.py), as Synapse advertises them; the list
    # is empty unless matrix_rtc.livekit_service_urls is set.
    "org.matrix.msc4143": True,
    # Simplified sliding sync, MSC4186 (api/client/sliding_sync.py): Element X and
    # matrix-js-sdk's SlidingSync look for this before they use the endpoint.
    "org.matrix.simplified_msc3575": True,
}


async def get_versions(_req: MatrixRequest) -> dict[str, Any]:
    return {
        "versions": list(SUPPORTED_VERSIONS),
        "unstable_features": UNSTABLE_FEATURES,
    }


def endpoints() -> list[Endpoint]:
    return [
        Endpoint(
            "GET", ("/_matrix/client/versions",), get_versions, auth=AuthMode.NONE
        ),
    ]

"""Third-party identifiers and networks, which this server does not provide.

    POST /_matrix/client/v3/account/3pid                      (deprecated)
    POST /_matrix/client/v3/account/3pid/add
    POST /_matrix/client/v3/account/3pid/bind
    POST /_matrix/client/v3/account/3pid/delete
    POST /_matrix/client/v3/account/3pid/unbind
    POST /_matrix/client/v3/account/3pid/{email,msisdn}/requestToken
    POST /_matrix/client/v3/register/{email,msisdn}/requestToken
    POST /_matrix/client/v3/account/password/{email,msisdn}/requestToken
    GET  /_matrix/client/v3/thirdparty/protocols
    GET  /_matrix/client/v3/thirdparty/protocol/{protocol}
    GET  /_matrix/client/v3/thirdparty/location/{protocol}
    GET  /_matrix/client/v3/thirdparty/user/{protocol}
    GET  /_matrix/client/v3/thirdparty/location
    GET  /_matrix/client/v3/thirdparty/user

Spec: Client-Server API > Adding account administrative contact information; Modules >
Third-party Networks. No e-mail/SMS validation and no application services exist, so
`m.3pid_changes` is disabled in /capabilities and every attempt to add or validate an
identifier is refused with the spec's `M_THREEPID_DENIED` (the account's requestToken
endpoints, which take no access token, with `M_THREEPID_MEDIUM_NOT_SUPPORTED`, v1.13);
removing one the account
cannot have succeeds with `no-support`; password resets find no identifier
(`M_THREEPID_NOT_FOUND`). No bridges: no protocols, no lookups.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest, client_paths
from ranvier.core.errors import MatrixError, not_found


def _denied() -> MatrixError:
    return MatrixError(
        403,
        "M_THREEPID_DENIED",
        "Third-party identifiers cannot be added on this server.",
    )


async def refuse_threepid(req: MatrixRequest) -> dict[str, Any]:
    await req.json()  # still answers malformed bodies with M_NOT_JSON
    raise _denied()


async def refuse_medium(req: MatrixRequest) -> dict[str, Any]:
    await req.json()
    # Since v1.13 (MSC4178) the spec's answer when the server cannot validate the medium.
    raise MatrixError(
        400,
        "M_THREEPID_MEDIUM_NOT_SUPPORTED",
        "This server cannot validate third-party identifiers of this medium.",
    )


async def refuse_password_reset(req: MatrixRequest) -> dict[str, Any]:
    await req.json()
    raise MatrixError(
        400,
        "M_THREEPID_NOT_FOUND",
        "No account has this third-party identifier on this server.",
    )


async def remove_threepid(req: MatrixRequest) -> dict[str, Any]:
    body = await req.json()
    body.require_str("medium")
    body.require_str("address")
    body.get_str("id_server")
    # The account has no identifiers, so there is nothing to remove or unbind.
    return {"id_server_unbind_result": "no-support"}


async def get_protocols(_req: MatrixRequest) -> dict[str, Any]:
    return {}


async def get_protocol(_req: MatrixRequest) -> dict[str, Any]:
    raise not_found("Unknown protocol.")


async def query_all_protocols(_req: MatrixRequest) -> list[Any]:
    return []


def endpoints() -> list[Endpoint]:
    user = AuthMode.USER
    eps = [
        Endpoint("POST", client_paths(path), refuse_threepid, auth=user)
        for path in ("/account/3pid", "/account/3pid/add", "/account/3pid/bind")
    ]
    # The requestToken endpoints take no access token (the spec gives them no
    # security): the validation session is what later ties the address to a user.
    eps += [
        Endpoint("POST", client_paths(path), refuse_medium, auth=AuthMode.NONE)
        for path in (
            "/account/3pid/email/requestToken",
            "/account/3pid/msisdn/requestToken",
        )
    ]
    eps += [
        Endpoint("POST", client_paths(path), remove_threepid, auth=user)
        for path in ("/account/3pid/delete", "/account/3pid/unbind")
    ]
    eps += [
        Endpoint("POST", client_paths(path), refuse_threepid, auth=AuthMode.NONE)
        for path in ("/register/email/requestToken", "/register/msisdn/requestToken")
    ]
    eps += [
        Endpoint("POST", client_paths(path), refuse_password_reset, auth=AuthMode.NONE)
        for path in (
            "/account/password/email/requestToken",
            "/account/password/msisdn/requestToken",
        )
    ]
    eps += [
        Endpoint(
            "GET", client_paths("/thirdparty/protocols"), get_protocols, auth=user
        ),
        *(
            Endpoint("GET", client_paths(path), get_protocol, auth=user)
            for path in (
                "/thirdparty/protocol/{protocol}",
                "/thirdparty/location/{protocol}",
                "/thirdparty/user/{protocol}",
            )
        ),
        *(
            Endpoint("GET", client_paths(path), query_all_protocols, auth=user)
            for path in ("/thirdparty/location", "/thirdparty/user")
        ),
    ]
    return eps

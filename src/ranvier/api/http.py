"""The HTTP edge: endpoint declarations, routing, error mapping, auth extraction, rate limits,
CORS, request IDs and the access log.

Endpoint modules declare `Endpoint(method, paths, handler, auth=...)`; `build_http_app`
mounts the endpoints of the resources a listener serves on one aiohttp application.
Handlers receive a `MatrixRequest` and return a JSON-able dict (200), a `(status, dict)`
pair, or a ready aiohttp response (media downloads, plain text).
"""

from __future__ import annotations

import enum
import itertools
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from ranvier.core.errors import (
    MatrixError,
    bad_json,
    forbidden,
    invalid_param,
    limit_exceeded,
    missing_param,
    missing_token,
    not_json,
    too_large,
    unrecognized,
)
from ranvier.core.json import (
    CANONICAL_JSON_INT_MAX,
    CANONICAL_JSON_INT_MIN,
    MAX_JSON_NESTING,
    contains_nul,
    exceeds_nesting,
    is_big_integer,
)
from ranvier.util.logcontext import request_id_var
from ranvier.util.ratelimit import Bucket, RateLimiter

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("ranvier.access")

JsonDict = dict[str, Any]

# Per-request storage: the authenticated user (for the access log) and the client address
# (from X-Forwarded-For when the listener trusts a reverse proxy).
USER_ID_KEY = web.RequestKey("user_id", str)
CLIENT_IP_KEY = web.RequestKey("client_ip", str)

# Path parameters (IDs, event types, state keys, transaction IDs, tags ...) all end up as
# keys of some database index, and a PostgreSQL B-tree entry must stay under ~2.7 kB:
# longer values could only fail there, with a 500.
MAX_PATH_PARAM_BYTES: Final = 1024
# Query integers: ASCII digits only (`int()` also takes " 1", "1_0" and "\uff11"), at
# most 16 of them, since nothing in Matrix counts past canonical JSON's 2**53 - 1.
_QUERY_INT_RE: Final = re.compile(r"-?[0-9]{1,16}")


class AuthMode(enum.Enum):
    NONE = "none"  # no access token is looked at
    OPTIONAL = "optional"  # used when present (e.g. peeking, public room list)
    USER = "user"  # required; guests are refused with M_GUEST_ACCESS_FORBIDDEN
    GUEST_OK = "guest_ok"  # required; guests allowed (the spec's guest endpoint list)
    SERVER = "server"  # federation: a signed `Authorization: X-Matrix` header


@dataclass(frozen=True, slots=True)
class Requester:
    user_id: str
    device_id: str | None
    is_guest: bool = False
    # The access token's row id, so logout can revoke exactly this session.
    token_id: int | None = None
    # Set when an application service makes the request (its `as_token`), acting as
    # its sender or, with `?user_id=`, as a user in its namespace.
    app_service_id: str | None = None
    # False for services registered with `rate_limited: false`.
    ratelimited: bool = True
    # Spec: account locking (every request 401 M_USER_LOCKED) and suspension (read-only).
    locked: bool = False
    suspended: bool = False
    # Synapse's shadow-ban: sends and invites answer success but do nothing.
    shadow_banned: bool = False


class Authenticator(Protocol):
    async def authenticate(
        self, access_token: str, client_ip: str | None = None
    ) -> Requester:
        """Resolve a token or raise `MatrixError` (M_UNKNOWN_TOKEN)."""
        ...


class AppServiceAuthenticator(Protocol):
    async def authenticate_appservice(
        self, token: str, query: Mapping[str, str]
    ) -> Requester | None:
        """The requester for an application service's `as_token` (masquerading with
        `user_id=`), None when `token` is no service's, or raise `MatrixError`."""
        ...


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """What X-Matrix verification needs from an inbound federation request."""

    method: str
    # Path and query exactly as received (still percent-encoded): what the origin signed.
    uri: str
    authorization: tuple[str, ...]
    # The parsed JSON body, None when the request had none.
    content: Any | None


class ServerAuthenticator(Protocol):
    async def authenticate_server(self, request: ServerRequest) -> str:
        """Return the verified origin server name or raise `MatrixError` (401
        M_UNAUTHORIZED)."""
        ...


Handler = Callable[["MatrixRequest"], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    paths: tuple[str, ...]
    handler: Handler
    auth: AuthMode = AuthMode.USER
    # Name of a rate-limit bucket from the config (`rate_limits.<name>`), or None.
    ratelimit: str | None = None


def client_paths(
    suffix: str, *, r0: bool = True, prefix: str = "v3"
) -> tuple[str, ...]:
    """`/_matrix/client/v3<suffix>` plus the legacy `r0` alias older clients still call."""
    paths = [f"/_matrix/client/{prefix}{suffix}"]
    if r0 and prefix == "v3":
        paths.append(f"/_matrix/client/r0{suffix}")
    return tuple(paths)


class JsonBody:
    """Typed access to a JSON request object that answers bad input with spec errors."""

    __slots__ = ("raw",)

    def __init__(self, raw: JsonDict) -> None:
        self.raw = raw

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def _get(
        self, key: str, types: type | tuple[type, ...], what: str, default: Any
    ) -> Any:
        if key not in self.raw or self.raw[key] is None:
            return default
        value = self.raw[key]
        # bool is an int subclass: never accept it where a number is expected.
        if isinstance(value, bool) and bool not in (
            types if isinstance(types, tuple) else (types,)
        ):
            raise bad_json(f"'{key}' must be {what}")
        if not isinstance(value, types):
            raise bad_json(f"'{key}' must be {what}")
        return value

    def get_str(self, key: str, default: str | None = None) -> str | None:
        v: str | None = self._get(key, str, "a string", default)
        return v

    def require_str(self, key: str) -> str:
        v = self.get_str(key)
        if v is None:
            raise missing_param(f"Missing '{key}'")
        return v

    def get_int(self, key: str, default: int | None = None) -> int | None:
        if is_big_integer(self.raw.get(key)):
            raise bad_json(f"'{key}' is out of range (integer out of range)")
        v: int | None = self._get(key, int, "an integer", default)
        # Beyond canonical JSON's range a number can be neither signed nor stored.
        if v is not None and not CANONICAL_JSON_INT_MIN <= v <= CANONICAL_JSON_INT_MAX:
            raise bad_json(f"'{key}' is out of range")
        return v

    def get_bool(self, key: str, default: bool = False) -> bool:
        v: bool = self._get(key, bool, "a boolean", default)
        return v

    def get_optional_bool(self, key: str) -> bool | None:
        """The boolean, or None when the key is absent or null."""
        v: bool | None = self._get(key, bool, "a boolean", None)
        return v

    def get_dict(self, key: str) -> JsonDict | None:
        v: JsonDict | None = self._get(key, dict, "an object", None)
        return v

    def get_list(self, key: str) -> list[Any] | None:
        v: list[Any] | None = self._get(key, list, "an array", None)
        return v

    def get_str_list(self, key: str) -> list[str] | None:
        v = self.get_list(key)
        if v is not None and not all(isinstance(x, str) for x in v):
            raise bad_json(f"'{key}' must be an array of strings")
        return v


class MatrixRequest:
    __slots__ = ("_body", "_client", "_origin", "raw", "requester")

    def __init__(
        self, raw: web.Request, requester: Requester | None, *, client: bool = True
    ) -> None:
        self.raw = raw
        self.requester = requester
        # Client bodies are checked by `check_client_json`; federation bodies carry other
        # servers' signed events, which the event format checks judge instead.
        self._client = client
        self._origin: str | None = None
        self._body: Any = _UNSET

    def set_origin(self, origin: str) -> None:
        """For the edge: the origin server X-Matrix verification established."""
        self._origin = origin

    @property
    def origin(self) -> str:
        """The authenticated origin server; only valid on `AuthMode.SERVER` endpoints."""
        if self._origin is None:
            raise MatrixError(401, "M_UNAUTHORIZED", "Missing X-Matrix authentication.")
        return self._origin

    @property
    def user(self) -> Requester:
        """The authenticated requester; only valid on endpoints that require auth."""
        if self.requester is None:
            raise missing_token()
        return self.requester

    def path_param(self, name: str) -> str:
        return self.raw.match_info[name]

    @property
    def query(self) -> Mapping[str, str]:
        return self.raw.query

    def query_int(
        self,
        name: str,
        default: int | None = None,
        *,
        minimum: int = CANONICAL_JSON_INT_MIN,
        maximum: int = CANONICAL_JSON_INT_MAX,
    ) -> int | None:
        v = self.raw.query.get(name)
        if v is None or v == "":
            return default
        if _QUERY_INT_RE.fullmatch(v) is None:
            raise invalid_param(f"'{name}' must be an integer")
        n = int(v)
        if not minimum <= n <= maximum:
            raise invalid_param(f"'{name}' must be in [{minimum}, {maximum}]")
        return n

    def query_json(self, name: str) -> Any | None:
        """A JSON query parameter (inline filters), checked like a client body."""
        raw = self.raw.query.get(name)
        if raw is None or raw == "":
            return None
        data = raw.encode()
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise bad_json(f"'{name}' is not valid JSON") from None
        check_client_json(data, value)
        return value

    def query_bool(self, name: str, default: bool = False) -> bool:
        v = self.raw.query.get(name)
        if v is None:
            return default
        # Case-insensitive: matrix-nio sends Python's "True".
        if v.lower() in ("true", "1"):
            return True
        if v.lower() in ("false", "0"):
            return False
        raise MatrixError(400, "M_INVALID_PARAM", f"'{name}' must be true or false")

    @property
    def client_ip(self) -> str:
        ip: str | None = self.raw.get(CLIENT_IP_KEY) or self.raw.remote
        return ip or "-"

    async def body_bytes(self) -> bytes:
        try:
            return await self.raw.read()
        except web.HTTPRequestEntityTooLarge:
            raise too_large() from None

    async def json_any(self) -> Any:
        if self._body is _UNSET:
            data = await self.body_bytes()
            if not data:
                self._body = {}
            else:
                try:
                    body = orjson.loads(data)
                except orjson.JSONDecodeError:
                    raise not_json() from None
                if self._client:
                    check_client_json(data, body)
                self._body = body
        return self._body

    async def json(self) -> JsonBody:
        """The request body as a JSON object (empty body = `{}`)."""
        body = await self.json_any()
        if not isinstance(body, dict):
            raise not_json("Content must be a JSON object.")
        return JsonBody(body)


_UNSET = object()


def check_client_json(data: bytes, value: Any) -> None:
    """Refuse client JSON that could be accepted but never stored or served: nesting
    past `MAX_JSON_NESTING`, or U+0000 in a string (PostgreSQL text cannot hold it).
    The scans of the raw bytes run at C speed; only a possible hit walks the value."""
    if data.count(b"{") + data.count(b"[") > MAX_JSON_NESTING and exceeds_nesting(
        value
    ):
        raise bad_json(f"JSON nests more than {MAX_JSON_NESTING} levels deep.")
    if b"\\u0000" in data and contains_nul(value):
        raise bad_json("Strings must not contain U+0000.")


def check_params(request: web.Request) -> None:
    """Refuse path and query parameters no handler could store: U+0000 anywhere, or a
    path parameter over `MAX_PATH_PARAM_BYTES`."""
    for name, value in request.match_info.items():
        if "\x00" in value:
            raise invalid_param(f"'{name}' must not contain U+0000")
        if len(value) * 4 > MAX_PATH_PARAM_BYTES and (
            len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_PARAM_BYTES
        ):
            raise invalid_param(f"'{name}' is longer than {MAX_PATH_PARAM_BYTES} bytes")
    for name, value in request.query.items():
        if "\x00" in value:
            raise invalid_param(f"'{name}' must not contain U+0000")


_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization, Date",
    "Access-Control-Expose-Headers": "Content-Disposition",
}


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type="application/json"
    )


def error_response(err: MatrixError) -> web.Response:
    resp = json_response(err.to_json(), err.status)
    if err.status == 429 and "retry_after_ms" in err.extra:
        resp.headers["Retry-After"] = str(
            max(1, int(err.extra["retry_after_ms"]) // 1000)
        )
    return resp


def extract_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        if scheme.lower() != "x-matrix":
            raise MatrixError(401, "M_MISSING_TOKEN", "Malformed Authorization header.")
    return request.query.get("access_token") or None


RequestObserver = Callable[[str, str, int, float], None]


def route_template(request: web.Request) -> str:
    """The matched route's template, not the raw path: a metrics label per room or user
    would be unbounded."""
    route = request.match_info.route
    resource = route.resource
    if resource is None or request.match_info.http_exception is not None:
        return "<unmatched>"
    return resource.canonical


@dataclass
class HttpSettings:
    max_body_size: int = 1 << 20
    ratelimit_buckets: Mapping[str, Bucket] = field(default_factory=dict)
    trust_forwarded_for: bool = False
    # Verifies `AuthMode.SERVER` endpoints (federation); None refuses them with 401.
    server_authenticator: ServerAuthenticator | None = None
    # Checked before `Authenticator`: application services' `as_token`s.
    appservice_authenticator: AppServiceAuthenticator | None = None
    # Told of every answered request: (method, route template, status, seconds).
    request_observer: RequestObserver | None = None


class _Dispatcher:
    """Wraps one endpoint's handler with auth, rate limiting and response encoding."""

    def __init__(
        self,
        endpoint: Endpoint,
        authenticator: Authenticator | None,
        limiter: RateLimiter | None,
        settings: HttpSettings,
    ) -> None:
        self._ep = endpoint
        self._auth = authenticator
        self._server_auth = settings.server_authenticator
        self._appservice_auth = settings.appservice_authenticator
        self._limiter = limiter
        self._bucket = (
            settings.ratelimit_buckets.get(endpoint.ratelimit)
            if endpoint.ratelimit
            else None
        )

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        check_params(request)
        if self._ep.auth is AuthMode.SERVER:
            mreq = await self._authenticate_server(request)
        else:
            mreq = MatrixRequest(request, await self._authenticate(request))
        if mreq.requester is not None and mreq.requester.shadow_banned:
            faked = shadow_banned_answer(request)
            if faked is not None:
                return json_response(faked)
        if (
            self._bucket is not None
            and self._limiter is not None
            and (mreq.requester is None or mreq.requester.ratelimited)
        ):
            key = mreq.requester.user_id if mreq.requester else mreq.client_ip
            wait = self._limiter.check(self._ep.ratelimit or "", key, self._bucket)
            if wait:
                raise limit_exceeded(wait)
        result = await self._ep.handler(mreq)
        if isinstance(result, web.StreamResponse):
            return result
        if isinstance(result, tuple):
            status, body = result
            return json_response(body, status)
        return json_response(result)

    async def _authenticate_server(self, request: web.Request) -> MatrixRequest:
        headers = tuple(request.headers.getall("Authorization", ()))
        if not headers:
            raise MatrixError(
                401, "M_UNAUTHORIZED", "Missing X-Matrix Authorization header."
            )
        if self._server_auth is None:
            raise MatrixError(401, "M_UNAUTHORIZED", "Federation is disabled.")
        mreq = MatrixRequest(request, None, client=False)
        content = await mreq.json_any() if request.body_exists else None
        origin = await self._server_auth.authenticate_server(
            ServerRequest(request.method, request.raw_path, headers, content)
        )
        mreq.set_origin(origin)
        request[USER_ID_KEY] = origin
        return mreq

    async def _authenticate(self, request: web.Request) -> Requester | None:
        mode = self._ep.auth
        if mode is AuthMode.NONE:
            return None
        token = extract_token(request)
        if token is None:
            if mode is AuthMode.OPTIONAL:
                return None
            raise missing_token()
        if self._appservice_auth is not None:
            service = await self._appservice_auth.authenticate_appservice(
                token, request.query
            )
            if service is not None:
                request[USER_ID_KEY] = service.user_id
                return service
        if self._auth is None:
            raise MatrixError(500, "M_UNKNOWN", "No authenticator configured.")
        client_ip = request.get(CLIENT_IP_KEY) or request.remote
        requester = await self._auth.authenticate(token, client_ip)
        if requester.is_guest and mode is AuthMode.USER:
            raise MatrixError(
                403, "M_GUEST_ACCESS_FORBIDDEN", "Guest access is not allowed here."
            )
        request[USER_ID_KEY] = requester.user_id
        if requester.locked or requester.suspended:
            check_account_restrictions(request, requester)
        return requester


# Spec (Client-Server API > Account locking): a locked account may only log out.
_LOCKED_ALLOWED: Final = re.compile(r"/_matrix/client/[^/]+/logout(/all)?")
# Spec (Account suspension): a suspended account keeps read access and may leave, log
# out, manage its devices and keys, deactivate, and keep its client state (filters,
# receipts, account data, to-device); everything else that writes is refused.
_SUSPENDED_ALLOWED: Final = re.compile(
    r"/_matrix/client/[^/]+/(logout(/all)?|rooms/[^/]+/(leave|forget|receipt/.*"
    r"|read_markers|typing/.*)|devices/.*|delete_devices|account/deactivate"
    r"|keys/.*|room_keys/.*|user/[^/]+/(filter|account_data/.*|rooms/.*)"
    r"|sendToDevice/.*|search)"
)
_READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_SHADOW_SEND: Final = re.compile(r"/_matrix/client/[^/]+/rooms/[^/]+/send/.+")
_SHADOW_INVITE: Final = re.compile(r"/_matrix/client/[^/]+/rooms/[^/]+/invite")


def shadow_banned_answer(request: web.Request) -> JsonDict | None:
    """What a shadow-banned user is told instead of sending or inviting (as Synapse):
    a made-up event ID, or an empty success; None for requests that run normally."""
    path = request.path
    if request.method == "PUT" and _SHADOW_SEND.fullmatch(path):
        return {"event_id": "$" + secrets.token_urlsafe(32)}
    if request.method == "POST" and _SHADOW_INVITE.fullmatch(path):
        return {}
    return None


def check_account_restrictions(request: web.Request, requester: Requester) -> None:
    path = request.path
    if requester.locked:
        if _LOCKED_ALLOWED.fullmatch(path) is None:
            raise MatrixError(
                401, "M_USER_LOCKED", "This account has been locked.", soft_logout=True
            )
        return
    if request.method in _READ_METHODS or path.startswith("/_synapse/admin/"):
        return
    if _SUSPENDED_ALLOWED.fullmatch(path) is None:
        raise MatrixError(403, "M_USER_SUSPENDED", "This account has been suspended.")


_request_ids = itertools.count(1)


def _redacted_path(request: web.Request) -> str:
    if "access_token" not in request.query:
        return request.path_qs
    q = {
        k: ("<redacted>" if k == "access_token" else v)
        for k, v in request.query.items()
    }
    return str(request.rel_url.with_query(q))


def _make_middleware(settings: HttpSettings) -> Any:
    @web.middleware
    async def matrix_middleware(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        rid = f"{request.method}-{next(_request_ids)}"
        token = request_id_var.set(rid)
        start = time.perf_counter()
        if settings.trust_forwarded_for:
            fwd = request.headers.get("X-Forwarded-For")
            if fwd:
                request[CLIENT_IP_KEY] = fwd.split(",")[0].strip()
        status = 500
        try:
            response = await _dispatch(request, handler)
            response.headers.update(_CORS_HEADERS)
            status = response.status
            return response
        finally:
            if settings.request_observer is not None:
                settings.request_observer(
                    request.method,
                    route_template(request),
                    status,
                    time.perf_counter() - start,
                )
            access_logger.info(
                "%s %s %s %s %.1fms",
                request.get(CLIENT_IP_KEY) or request.remote,
                request.get(USER_ID_KEY, "-"),
                request.method,
                _redacted_path(request),
                (time.perf_counter() - start) * 1000,
            )
            request_id_var.reset(token)

    return matrix_middleware


async def _dispatch(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204)
    try:
        return await handler(request)
    except MatrixError as e:
        return error_response(e)
    except web.HTTPRequestEntityTooLarge:
        return error_response(too_large())
    except web.HTTPMethodNotAllowed:
        return error_response(
            unrecognized(405, "Unrecognized request: method not allowed")
        )
    except web.HTTPNotFound:
        return error_response(unrecognized(404))
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(MatrixError(e.status, "M_UNKNOWN", e.reason))
    except Exception:
        logger.exception("request handler failed: %s %s", request.method, request.path)
        return error_response(MatrixError(500, "M_UNKNOWN", "Internal server error"))


def _as_coroutine_function(
    dispatcher: _Dispatcher,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    # aiohttp only accepts coroutine functions as handlers, not awaitable-returning objects.
    async def handle(request: web.Request) -> web.StreamResponse:
        return await dispatcher(request)

    return handle


def build_http_app(
    endpoints: Iterable[Endpoint],
    *,
    authenticator: Authenticator | None,
    limiter: RateLimiter | None,
    settings: HttpSettings,
) -> web.Application:
    app = web.Application(
        middlewares=[_make_middleware(settings)], client_max_size=settings.max_body_size
    )
    seen: set[tuple[str, str]] = set()
    head: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
    for ep in endpoints:
        handler = _as_coroutine_function(
            _Dispatcher(ep, authenticator, limiter, settings)
        )
        for path in ep.paths:
            if (ep.method, path) in seen:
                raise ValueError(f"duplicate route {ep.method} {path}")
            seen.add((ep.method, path))
            app.router.add_route(ep.method, path, handler)
            if ep.method == "GET":
                head[path] = handler
    # HEAD answers like GET without the body (RFC 9110 §9.3.2; aiohttp sends no body
    # for HEAD): the same handler, auth and rate limits.
    for path, handler in head.items():
        if ("HEAD", path) not in seen:
            app.router.add_route("HEAD", path, handler)
    return app


def require_self(req: MatrixRequest, user_id: str) -> None:
    """Most per-user endpoints take the user ID in the path: it must be the requester."""
    if req.user.user_id != user_id:
        raise forbidden("Cannot act on behalf of another user.")


def parse_json_object(data: bytes) -> JsonDict:
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise not_json() from None
    if not isinstance(obj, dict):
        raise bad_json("Expected a JSON object.")
    return obj


def endpoints_of(*groups: Sequence[Endpoint]) -> list[Endpoint]:
    return [ep for g in groups for ep in g]

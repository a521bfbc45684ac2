"""Signed JSON requests to other servers (spec: Server-Server API > Authentication).

    path = federation_path("/_matrix/federation/v1/event/{}", event_id)
    pdu = await client.get_json("remote.example", path)

Every request carries `Authorization: X-Matrix …` signed with our server key over
`{method, uri, origin, destination, content}`. The `uri` is percent-encoded exactly once
(`federation_path`, `args`) and sent byte for byte as signed. Failures raise
`FederationError`; destinations backing off after failures raise
`NotRetryingDestination` without touching the network unless `ignore_backoff`.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Final

from ranvier.core.crypto.keys import SigningKey
from ranvier.core.json import InvalidJsonError, decode_json, encode_canonical_json
from ranvier.federation.errors import (
    FederationError,
    NotRetryingDestination,
    is_unknown_endpoint_answer,
)
from ranvier.federation.retry import DestinationRetryTracker
from ranvier.federation.transport import (
    FederationTransport,
    TransportError,
    TransportResponse,
)
from ranvier.federation.xmatrix import REQUEST_JSON_STRICT, sign_request

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT: Final = 60.0
# Big enough for /state of a large room and /send_join responses.
DEFAULT_MAX_RESPONSE_BYTES: Final = 100 * 1024 * 1024
KEY_RESPONSE_MAX_BYTES: Final = 1024 * 1024

QueryArgs = Mapping[str, str | int | Sequence[str]]


def federation_path(template: str, *params: str) -> str:
    """Fill `{}` placeholders with percent-encoded path segments (`/` encoded too)."""
    return template.format(*(urllib.parse.quote(p, safe="") for p in params))


def _encode_query(args: QueryArgs | None) -> str:
    if not args:
        return ""
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        if isinstance(value, str | int):
            pairs.append((key, str(value)))
        else:
            pairs.extend((key, v) for v in value)
    return "?" + urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)


def _error_fields(body: bytes) -> tuple[str | None, str]:
    try:
        doc = decode_json(body)
    except InvalidJsonError:
        return None, body[:200].decode("utf-8", "replace")
    if isinstance(doc, dict):
        errcode = doc.get("errcode")
        error = doc.get("error")
        return (
            errcode if isinstance(errcode, str) else None,
            error if isinstance(error, str) else "",
        )
    return None, ""


class FederationClient:
    def __init__(
        self,
        server_name: str,
        signing_key: SigningKey,
        transport: FederationTransport,
        retry: DestinationRetryTracker,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.server_name = server_name
        self._signing_key = signing_key
        self._transport = transport
        self._retry = retry
        self._timeout = timeout
        self._max_response_bytes = max_response_bytes

    async def request_json(
        self,
        method: str,
        destination: str,
        path: str,
        *,
        args: QueryArgs | None = None,
        content: Any | None = None,
        ignore_backoff: bool = False,
        sign: bool = True,
        request_timeout: float | None = None,
        max_response_bytes: int | None = None,
    ) -> Any:
        """Send one request and return the parsed JSON body of a 2xx answer."""
        if destination == self.server_name:
            raise FederationError(
                destination, "refusing to send a request to ourselves"
            )
        if not ignore_backoff and self._retry.is_backing_off(destination):
            raise NotRetryingDestination(destination, self._retry.retry_at(destination))
        uri = path + _encode_query(args)
        body = (
            encode_canonical_json(content, strict=REQUEST_JSON_STRICT)
            if content is not None
            else None
        )
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if sign:
            headers["Authorization"] = sign_request(
                self._signing_key, self.server_name, destination, method, uri, content
            )
        epoch = self._retry.contact_epoch(destination)
        try:
            response = await self._transport.request(
                destination,
                method,
                uri,
                headers=headers,
                body=body,
                request_timeout=request_timeout or self._timeout,
                max_response_bytes=max_response_bytes or self._max_response_bytes,
            )
        except TransportError as e:
            await self._retry.record_failure(destination, epoch=epoch)
            raise FederationError(destination, str(e)) from None
        return await self._handle_response(
            destination, method, path, response, epoch=epoch
        )

    async def _handle_response(
        self,
        destination: str,
        method: str,
        path: str,
        response: TransportResponse,
        *,
        epoch: int | None = None,
    ) -> Any:
        status = response.status
        if status >= 500:
            await self._retry.record_failure(destination, epoch=epoch)
        elif status != 429:
            # Any other answer proves the server is up.
            await self._retry.record_success(destination)
        if not 200 <= status < 300:
            errcode, message = _error_fields(response.body)
            logger.info("%s %s %s -> %d %s", method, destination, path, status, errcode)
            raise FederationError(
                destination,
                f"{status} {errcode or ''} {message}".strip(),
                status=status,
                errcode=errcode,
                unknown_endpoint=is_unknown_endpoint_answer(
                    status, errcode, response.body
                ),
                remote_message=message if errcode else "",
            )
        try:
            return decode_json(response.body)
        except InvalidJsonError:
            raise FederationError(
                destination, "response is not JSON", status=status
            ) from None

    async def get_raw(
        self,
        destination: str,
        path: str,
        *,
        args: QueryArgs | None = None,
        sign: bool = True,
        request_timeout: float | None = None,
        max_response_bytes: int | None = None,
    ) -> TransportResponse:
        """A GET whose answer is not JSON (media downloads): the raw 2xx response with
        its headers. Same signing, backoff and failure accounting as `request_json`;
        non-2xx answers raise `FederationError` carrying the status and errcode."""
        if destination == self.server_name:
            raise FederationError(
                destination, "refusing to send a request to ourselves"
            )
        if self._retry.is_backing_off(destination):
            raise NotRetryingDestination(destination, self._retry.retry_at(destination))
        uri = path + _encode_query(args)
        headers: dict[str, str] = {}
        if sign:
            headers["Authorization"] = sign_request(
                self._signing_key, self.server_name, destination, "GET", uri, None
            )
        epoch = self._retry.contact_epoch(destination)
        try:
            response = await self._transport.request(
                destination,
                "GET",
                uri,
                headers=headers,
                body=None,
                request_timeout=request_timeout or self._timeout,
                max_response_bytes=max_response_bytes or self._max_response_bytes,
            )
        except TransportError as e:
            await self._retry.record_failure(destination, epoch=epoch)
            raise FederationError(destination, str(e)) from None
        if 200 <= response.status < 300:
            await self._retry.record_success(destination)
            return response
        # Raises the same FederationError a JSON request would.
        await self._handle_response(destination, "GET", path, response, epoch=epoch)
        raise FederationError(
            destination, "unexpected response", status=response.status
        )

    async def get_json(
        self, destination: str, path: str, *, args: QueryArgs | None = None, **kw: Any
    ) -> Any:
        return await self.request_json("GET", destination, path, args=args, **kw)

    async def put_json(
        self, destination: str, path: str, content: Any, **kw: Any
    ) -> Any:
        return await self.request_json("PUT", destination, path, content=content, **kw)

    async def post_json(
        self, destination: str, path: str, content: Any, **kw: Any
    ) -> Any:
        return await self.request_json("POST", destination, path, content=content, **kw)

    async def delete_json(self, destination: str, path: str, **kw: Any) -> Any:
        return await self.request_json("DELETE", destination, path, **kw)

    async def send_transaction(
        self, destination: str, txn_id: str, transaction: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`PUT /_matrix/federation/v1/send/{txnId}`; returns the response object."""
        path = federation_path("/_matrix/federation/v1/send/{}", txn_id)
        result = await self.put_json(destination, path, dict(transaction))
        if not isinstance(result, dict):
            raise FederationError(destination, "send response is not an object")
        return result

    async def get_server_keys(self, destination: str) -> Any:
        """`GET /_matrix/key/v2/server`: unsigned (the key endpoints take no auth) and
        regardless of backoff, since verifying events depends on it."""
        return await self.get_json(
            destination,
            "/_matrix/key/v2/server",
            sign=False,
            ignore_backoff=True,
            max_response_bytes=KEY_RESPONSE_MAX_BYTES,
        )

    async def query_notary(self, notary: str, query: Mapping[str, Any]) -> Any:
        """`POST /_matrix/key/v2/query` on a notary (trusted key server)."""
        return await self.post_json(
            notary,
            "/_matrix/key/v2/query",
            dict(query),
            sign=False,
            ignore_backoff=True,
            max_response_bytes=KEY_RESPONSE_MAX_BYTES,
        )

"""Dynamic client registration (RFC 7591 as MSC2966 profiles it) and redirect URIs.

Spec: OAuth 2.0 API > Client registration; Redirect URI validation. Every client is
public (`token_endpoint_auth_method` `none`): it proves itself with PKCE, not a secret.

* `client_uri` is required, https, without user or password; it is the common base of
  the other URIs: `logo_uri`, `policy_uri`, `tos_uri` (and their `#lang` variants) are
  https on its host or a subdomain.
* `redirect_uris`, for `application_type` `web`: https on that common base. For
  `native`: those, or a private-use scheme that is the reversed host of the client_uri
  or a subdomain (`io.element.app:/callback` for `https://element.io`, no authority), or
  http on a loopback address (`http://127.0.0.1`, `http://[::1]`, `http://localhost`),
  whose port is ignored when matching (RFC 8252 section 7.3).
* No fragments anywhere; redirect URIs otherwise match exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from ranvier.services.oauth.errors import (
    invalid_client_metadata,
    invalid_redirect_uri,
)

AUTHORIZATION_CODE = "authorization_code"
REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type name
DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_TYPES = (AUTHORIZATION_CODE, REFRESH_TOKEN, DEVICE_CODE)
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
MAX_URIS = 20
MAX_TEXT = 2048
_LOCALISED = re.compile(r"(client_name|client_uri|logo_uri|policy_uri|tos_uri)(#.+)?")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    application_type: str
    client_uri: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    # Everything answered back to the client and stored (RFC 7591 section 3.2.1).
    document: dict[str, Any]

    @property
    def client_name(self) -> str | None:
        name = self.document.get("client_name")
        return name if isinstance(name, str) else None

    @property
    def logo_uri(self) -> str | None:
        uri = self.document.get("logo_uri")
        return uri if isinstance(uri, str) else None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> ClientMetadata:
        """A stored (already validated) document."""
        return cls(
            application_type=str(document.get("application_type", "web")),
            client_uri=str(document["client_uri"]),
            redirect_uris=tuple(document.get("redirect_uris", ())),
            grant_types=tuple(document.get("grant_types", ())),
            document=document,
        )


def _split(uri: object, what: str) -> SplitResult:
    if not isinstance(uri, str) or not uri or len(uri) > MAX_TEXT:
        raise invalid_client_metadata(f"{what} must be a URI.")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise invalid_client_metadata(f"{what} is not a valid URI.") from None
    if parts.fragment or "#" in uri:
        raise invalid_client_metadata(f"{what} must not have a fragment.")
    return parts


def _https(uri: object, what: str) -> SplitResult:
    parts = _split(uri, what)
    if parts.scheme != "https" or not parts.hostname:
        raise invalid_client_metadata(f"{what} must be an https URL.")
    if parts.username is not None or parts.password is not None:
        raise invalid_client_metadata(f"{what} must not contain a user or password.")
    return parts


def _on_base(host: str | None, base: str) -> bool:
    return host is not None and (host == base or host.endswith("." + base))


def _check_redirect_uri(uri: object, application_type: str, base: str) -> str:
    try:
        parts = _split(uri, "redirect_uri")
    except Exception as e:
        raise invalid_redirect_uri(str(getattr(e, "description", e))) from None
    assert isinstance(uri, str)
    if parts.scheme == "https":
        if parts.username is not None or parts.password is not None:
            raise invalid_redirect_uri("redirect_uri must not contain credentials.")
        if not _on_base(parts.hostname, base):
            raise invalid_redirect_uri(
                "https redirect_uris must be on the client_uri's host or a subdomain."
            )
        return uri
    if application_type != "native":
        raise invalid_redirect_uri("Web clients must use https redirect_uris.")
    if parts.scheme == "http":
        if parts.hostname not in LOOPBACK_HOSTS or parts.username is not None:
            raise invalid_redirect_uri("http redirect_uris must use a loopback host.")
        return uri
    if _SCHEME.fullmatch(parts.scheme) is None or "." not in parts.scheme:
        raise invalid_redirect_uri(
            "Private-use redirect URI schemes must be a reversed domain name."
        )
    if parts.netloc or uri.startswith(f"{parts.scheme}://"):
        raise invalid_redirect_uri("Private-use redirect URIs have no authority.")
    domain = ".".join(reversed(parts.scheme.split(".")))
    if not _on_base(domain, base):
        raise invalid_redirect_uri(
            "The private-use scheme must be the client_uri's host (or a subdomain) "
            "reversed."
        )
    return uri


def _str_list(body: dict[str, Any], key: str, default: list[str]) -> list[str]:
    value = body.get(key, default)
    if (
        not isinstance(value, list)
        or len(value) > MAX_URIS
        or not all(isinstance(v, str) and 0 < len(v) <= MAX_TEXT for v in value)
    ):
        raise invalid_client_metadata(f"{key} must be an array of strings.")
    return list(dict.fromkeys(value))


def _check_common_fields(body: dict[str, Any], base: str, doc: dict[str, Any]) -> None:
    for key, value in body.items():
        match = _LOCALISED.fullmatch(key)
        if match is None:
            continue
        if match[1] == "client_name":
            if not isinstance(value, str) or len(value) > 256:
                raise invalid_client_metadata(f"{key} must be a short string.")
        elif match[1] == "client_uri":
            _https(value, key)
        elif not _on_base(_https(value, key).hostname, base):
            raise invalid_client_metadata(
                f"{key} must be on the client_uri's host or a subdomain."
            )
        doc[key] = value


def validate_client_metadata(body: dict[str, Any]) -> ClientMetadata:
    """Validate a registration request; raises RFC 7591 errors."""
    application_type = body.get("application_type", "web")
    if application_type not in ("web", "native"):
        raise invalid_client_metadata("application_type must be web or native.")
    if "client_uri" not in body:
        raise invalid_client_metadata("client_uri is required.")
    client_uri = body["client_uri"]
    base = _https(client_uri, "client_uri").hostname
    assert base is not None
    auth_method = body.get("token_endpoint_auth_method", "none")
    if auth_method != "none":
        raise invalid_client_metadata(
            "Only public clients (token_endpoint_auth_method none) are supported."
        )
    grant_types = _str_list(body, "grant_types", [AUTHORIZATION_CODE])
    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown or not grant_types:
        raise invalid_client_metadata("Unsupported grant_types.")
    response_types = _str_list(
        body, "response_types", ["code"] if AUTHORIZATION_CODE in grant_types else []
    )
    if any(r != "code" for r in response_types) or (
        (AUTHORIZATION_CODE in grant_types) != bool(response_types)
    ):
        raise invalid_client_metadata(
            "response_types must be [code] exactly when authorization_code is used."
        )
    redirect_uris = [
        _check_redirect_uri(uri, application_type, base)
        for uri in _str_list(body, "redirect_uris", [])
    ]
    if AUTHORIZATION_CODE in grant_types and not redirect_uris:
        raise invalid_redirect_uri("redirect_uris are required for authorization_code.")
    doc: dict[str, Any] = {
        "application_type": application_type,
        "grant_types": grant_types,
        "response_types": response_types,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": "none",
    }
    _check_common_fields(body, base, doc)
    return ClientMetadata(
        application_type=application_type,
        client_uri=client_uri,
        redirect_uris=tuple(redirect_uris),
        grant_types=tuple(grant_types),
        document=doc,
    )


def redirect_uri_matches(registered: tuple[str, ...], uri: str) -> bool:
    """Exact match, except that loopback http URIs match on any port (RFC 8252 7.3)."""
    if uri in registered:
        return True
    try:
        parts = urlsplit(uri)
        if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
            return False
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    bare = parts._replace(netloc=_host_for_netloc(parts.hostname)).geturl()
    for candidate in registered:
        c = urlsplit(candidate)
        if (
            c.scheme == "http"
            and c.hostname == parts.hostname
            and c._replace(netloc=_host_for_netloc(c.hostname)).geturl() == bare
        ):
            return True
    return False


def _host_for_netloc(host: str | None) -> str:
    return f"[{host}]" if host is not None and ":" in host else str(host)

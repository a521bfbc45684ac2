"""OAuth 2.0 error responses (RFC 6749 section 5.2, RFC 7591 section 3.2.2, RFC 8628
section 3.5): raised by the services, rendered as JSON or as a redirect by the API."""

from __future__ import annotations


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def to_json(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_client(description: str = "Unknown client.") -> OAuthError:
    return OAuthError("invalid_client", description, 401)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)


def invalid_client_metadata(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", description)


def invalid_redirect_uri(description: str) -> OAuthError:
    return OAuthError("invalid_redirect_uri", description)

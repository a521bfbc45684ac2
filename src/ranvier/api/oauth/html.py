"""Server-rendered pages of the authorization server: layout, headers, cookies, CSRF.

Pages use no JavaScript and no third-party assets (the client's own logo on the consent
page is the one exception, allowed by origin). Every page carries a strict
Content-Security-Policy (inline style allowed by hash only, `frame-ancestors 'none'`),
`X-Frame-Options: DENY` and `no-store`. Forms are protected by a double-submit CSRF
token (a `SameSite=Lax` cookie whose value every form repeats) and by checking the
`Origin` header against the issuer's origin when the browser sends one.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from html import escape
from urllib.parse import urlsplit

from aiohttp import web

PREFIX = "/_ranvier/oauth2"
CSRF_COOKIE = "ranvier_oauth_csrf"
SESSION_COOKIE = "ranvier_oauth_session"
CSRF_FIELD = "csrf"

_CSS = (
    "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#17191c;margin:0}"
    "main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;"
    "border-radius:.75rem;box-shadow:0 1px 4px #0002}"
    "h1{font-size:1.1rem;color:#555;margin:0 0 1rem}h2{font-size:1.4rem;margin:0 0 1rem}"
    "label{display:block;margin:.8rem 0 .3rem;font-weight:600}"
    "input{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;"
    "border:1px solid #888;border-radius:.4rem}"
    "button{margin-top:1.2rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:.4rem;"
    "border:0;background:#0b6e4f;color:#fff;cursor:pointer}"
    "button.secondary{background:#ddd;color:#17191c}"
    ".error{background:#fde8e8;color:#8a1c1c;padding:.6rem;border-radius:.4rem}"
    "img.logo{max-width:64px;max-height:64px;float:right}"
    "li{margin:.4rem 0}form.inline{display:inline}"
)
_CSS_HASH = base64.b64encode(hashlib.sha256(_CSS.encode()).digest()).decode()


def e(text: object) -> str:
    return escape(str(text), quote=True)


def csp(*, img_sources: Iterable[str] = (), form_targets: Iterable[str] = ()) -> str:
    img = " ".join(["'self'", *img_sources])
    forms = " ".join(["'self'", *form_targets])
    return (
        f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src {img}; "
        f"form-action {forms}; frame-ancestors 'none'; base-uri 'none'"
    )


def source_of(uri: str) -> str | None:
    """The CSP source expression covering `uri` (origin, or scheme for private-use
    schemes, any port for loopback http)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme in ("http", "https") and parts.hostname:
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if parts.scheme == "http":
            return f"http://{host}:*"
        return f"https://{host}" + (f":{port}" if port else "")
    if parts.scheme and all(c.isalnum() or c in "+.-" for c in parts.scheme):
        return f"{parts.scheme}:"
    return None


class Page:
    """Everything one page render needs from its request."""

    def __init__(self, request: web.Request, server_name: str, secure: bool) -> None:
        self.request = request
        self.server_name = server_name
        self.secure = secure
        existing = request.cookies.get(CSRF_COOKIE)
        self.new_csrf = existing is None or len(existing) != 43
        self.csrf = secrets.token_urlsafe(32) if self.new_csrf else str(existing)

    def csrf_input(self) -> str:
        return f'<input type="hidden" name="{CSRF_FIELD}" value="{e(self.csrf)}">'

    def render(
        self,
        title: str,
        body: str,
        *,
        status: int = 200,
        img_sources: Iterable[str] = (),
        form_targets: Iterable[str] = (),
    ) -> web.Response:
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{e(title)} · {e(self.server_name)}</title>"
            f"<style>{_CSS}</style></head><body><main>"
            f"<h1>{e(self.server_name)}</h1><h2>{e(title)}</h2>{body}"
            "</main></body></html>"
        )
        response = web.Response(
            text=html, status=status, content_type="text/html", charset="utf-8"
        )
        response.headers["Content-Security-Policy"] = csp(
            img_sources=img_sources, form_targets=form_targets
        )
        self.secure_headers(response)
        return response

    def secure_headers(self, response: web.StreamResponse) -> None:
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Not `no-referrer`: with it browsers send `Origin: null` on our own forms.
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cache-Control"] = "no-store"
        if self.new_csrf:
            self.set_cookie(response, CSRF_COOKIE, self.csrf, max_age=None)

    def set_cookie(
        self, response: web.StreamResponse, name: str, value: str, max_age: int | None
    ) -> None:
        response.set_cookie(
            name,
            value,
            path=PREFIX,
            httponly=True,
            samesite="Lax",
            secure=self.secure,
            max_age=max_age,
        )

    def redirect(self, location: str) -> web.Response:
        response = web.Response(status=303, headers={"Location": location})
        self.secure_headers(response)
        return response


def error_page(page: Page, message: str, status: int = 400) -> web.Response:
    return page.render("Something went wrong", f'<p class="error">{e(message)}</p>',
                       status=status)  # fmt: skip

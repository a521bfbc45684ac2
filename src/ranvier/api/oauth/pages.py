"""The browser side of the authorization server: server-rendered HTML pages.

    GET       /_ranvier/oauth2/authorize          (RFC 6749 4.1.1, PKCE S256)
    GET|POST  /_ranvier/oauth2/login
    GET|POST  /_ranvier/oauth2/signup             (prompt=create lands here)
    GET|POST  /_ranvier/oauth2/consent
    GET|POST  /_ranvier/oauth2/device             (RFC 8628 user code entry)
    GET       /_ranvier/oauth2/account            (account_management_uri, MSC4191)
    POST      /_ranvier/oauth2/account/end_session
    POST      /_ranvier/oauth2/account/cross_signing_reset   (MSC4312)
    POST      /_ranvier/oauth2/account/password
    POST      /_ranvier/oauth2/logout

Spec: OAuth 2.0 API > Authorization code grant; Account management (MSC4191). Sign-up
takes a username and password only (plus a registration token when
`registration.require_token`), under the same rules as `/register`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from authlib.common.urls import add_params_to_uri

from ranvier.api.http import AuthMode, Endpoint, Handler, MatrixRequest
from ranvier.api.oauth.html import (
    CSRF_COOKIE,
    CSRF_FIELD,
    PREFIX,
    SESSION_COOKIE,
    Page,
    e,
    error_page,
    source_of,
)
from ranvier.core.errors import MatrixError
from ranvier.services.accounts.sessions import TokenOwner
from ranvier.services.oauth.cross_signing import RESET_ACTION
from ranvier.services.oauth.errors import OAuthError
from ranvier.services.oauth.grants import OAuthGrants, RedirectError
from ranvier.services.oauth.scopes import parse_scope
from ranvier.storage.stores.accounts import DeviceRow, UserRow
from ranvier.storage.stores.oauth import AuthorizationRequestRow

MAX_FIELD = 1024


class PasswordLogin(Protocol):
    async def find_user(self, user: str) -> UserRow | None: ...

    async def check_password(self, user: UserRow | None, password: str) -> bool: ...


class SignUp(Protocol):
    async def register_with_password(
        self, username: str, password: str, registration_token: str | None
    ) -> str: ...


class Devices(Protocol):
    async def get_devices(self, user_id: str) -> list[DeviceRow]: ...

    async def delete_devices(self, user_id: str, device_ids: Sequence[str]) -> None: ...

    async def change_password(
        self, owner: TokenOwner, new_password: str, *, logout_devices: bool
    ) -> None: ...


class ResetApprover(Protocol):
    async def approve(self, user_id: str) -> None: ...


class Browsers(Protocol):
    @property
    def lifetime_s(self) -> int: ...

    async def create(self, user_id: str) -> str: ...

    async def get_user(self, secret: str | None) -> str | None: ...

    async def end(self, secret: str | None) -> None: ...


def redirect_to_client(
    redirect_uri: str, mode: str, params: list[tuple[str, str]]
) -> str:
    return str(add_params_to_uri(redirect_uri, params, fragment=mode == "fragment"))


def _origin_of(url: str) -> str:
    """The `Origin` header browsers send for pages under `url`."""
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


def _login_hint(value: str | None, server_name: str) -> str | None:
    """The localpart of an MSC2964 `login_hint=mxid:@user:server` for this server."""
    if not value or not value.startswith("mxid:@") or len(value) > 300:
        return None
    localpart, _, server = value[6:].partition(":")
    return localpart if server == server_name and localpart else None


def _safe_next(value: str | None) -> str:
    """Only our own pages may be a `next` target (no open redirect)."""
    if value and value.startswith(PREFIX + "/") and "//" not in value[1:]:
        return value
    return f"{PREFIX}/account"


class OAuthPages:
    def __init__(
        self,
        *,
        server_name: str,
        issuer: str,
        grants: OAuthGrants,
        login: PasswordLogin,
        signup: SignUp,
        devices: Devices,
        browsers: Browsers,
        registration_enabled: bool,
        require_token: bool,
        reset_approver: ResetApprover,
    ) -> None:
        self._server_name = server_name
        self._issuer_origin = _origin_of(issuer)
        self._secure = issuer.startswith("https://")
        self._grants = grants
        self._login = login
        self._signup = signup
        self._devices = devices
        self._browsers = browsers
        self._registration_enabled = registration_enabled
        self._require_token = require_token
        self._reset_approver = reset_approver

    def _page(self, req: MatrixRequest) -> Page:
        return Page(req.raw, self._server_name, self._secure)

    async def _user(self, req: MatrixRequest) -> str | None:
        return await self._browsers.get_user(req.raw.cookies.get(SESSION_COOKIE))

    async def _form(self, req: MatrixRequest, page: Page) -> dict[str, str] | None:
        """The posted form if its CSRF token and Origin are right, else None."""
        origin = req.raw.headers.get("Origin")
        if origin is not None and origin != self._issuer_origin:
            return None
        try:
            posted = await req.raw.post()
        except (web.HTTPRequestEntityTooLarge, ValueError):
            return None
        form = {
            k: v
            for k, v in posted.items()
            if isinstance(v, str) and len(v) <= MAX_FIELD
        }
        cookie = req.raw.cookies.get(CSRF_COOKIE)
        token = form.get(CSRF_FIELD)
        if not cookie or token != cookie or page.new_csrf:
            return None
        return form

    # -- GET /authorize ------------------------------------------------------------------

    async def authorize(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        if len(set(req.query.keys())) != len(req.query):
            # RFC 6749 3.1: parameters must not repeat; which one to trust is unknown,
            # so the redirect URI is not trusted either.
            return error_page(page, "A parameter was given more than once.")
        params = dict(req.query.items())
        try:
            checked = await self._grants.check_authorization(params)
        except OAuthError as err:
            return error_page(page, err.description)
        except RedirectError as err:
            out = [("error", err.error.error),
                   ("error_description", err.error.description)]  # fmt: skip
            if err.state is not None:
                out.append(("state", err.state))
            return page.redirect(
                redirect_to_client(err.redirect_uri, err.response_mode, out)
            )
        user_id = await self._user(req)
        if checked.prompt == "none":
            error = "login_required" if user_id is None else "consent_required"
            out = [("error", error)]
            if checked.state is not None:
                out.append(("state", checked.state))
            return page.redirect(
                redirect_to_client(checked.redirect_uri, checked.response_mode, out)
            )
        request_id = await self._grants.create_request(checked)
        consent = f"{PREFIX}/consent?" + urlencode({"request": request_id})
        target = {"next": consent}
        hint = _login_hint(params.get("login_hint"), self._server_name)
        if hint:
            target["hint"] = hint
        if checked.prompt == "create":
            return page.redirect(f"{PREFIX}/signup?" + urlencode(target))
        if user_id is None or checked.prompt == "login":
            return page.redirect(f"{PREFIX}/login?" + urlencode(target))
        return page.redirect(consent)

    # -- sign in / sign up -----------------------------------------------------------------

    def _login_form(
        self, page: Page, next_url: str, error: str | None = None, hint: str = ""
    ) -> str:
        signup = (
            f'<p>No account? <a href="{PREFIX}/signup?{e(urlencode({"next": next_url}))}">'
            "Create one</a></p>"
            if self._registration_enabled
            else ""
        )
        return (
            (f'<p class="error" role="alert">{e(error)}</p>' if error else "")
            + f'<form method="post" action="{PREFIX}/login">{page.csrf_input()}'
            f'<input type="hidden" name="next" value="{e(next_url)}">'
            '<label for="username">Username</label>'
            '<input id="username" name="username" autocomplete="username" required'
            f' value="{e(hint)}">'
            '<label for="password">Password</label>'
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required>'
            "<button type=submit>Sign in</button></form>" + signup
        )

    async def get_login(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        next_url = _safe_next(req.query.get("next"))
        hint = req.query.get("hint", "")[:255]
        return page.render("Sign in", self._login_form(page, next_url, hint=hint))

    async def _signed_in(self, page: Page, user_id: str, next_url: str) -> web.Response:
        secret = await self._browsers.create(user_id)
        response = page.redirect(next_url)
        page.set_cookie(response, SESSION_COOKIE, secret, self._browsers.lifetime_s)
        return response

    async def post_login(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        if form is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        next_url = _safe_next(form.get("next"))
        user = await self._login.find_user(form.get("username", "").strip())
        if await self._login.check_password(user, form.get("password", "")):
            assert user is not None
            return await self._signed_in(page, user.user_id, next_url)
        return page.render(
            "Sign in",
            self._login_form(page, next_url, "Wrong username or password."),
            status=401,
        )

    def _signup_form(
        self, page: Page, next_url: str, error: str | None = None, hint: str = ""
    ) -> str:
        token = (
            '<label for="token">Registration token</label>'
            '<input id="token" name="token" autocomplete="off" required>'
            if self._require_token
            else ""
        )
        return (
            (f'<p class="error" role="alert">{e(error)}</p>' if error else "")
            + f'<form method="post" action="{PREFIX}/signup">{page.csrf_input()}'
            f'<input type="hidden" name="next" value="{e(next_url)}">'
            '<label for="username">Username</label>'
            '<input id="username" name="username" autocomplete="username" required'
            f' value="{e(hint)}">'
            '<label for="password">Password</label>'
            '<input id="password" name="password" type="password" '
            'autocomplete="new-password" required>'
            '<label for="password2">Repeat the password</label>'
            '<input id="password2" name="password2" type="password" '
            'autocomplete="new-password" required>'
            f"{token}<button type=submit>Create account</button></form>"
            f'<p>Have an account? <a href="{PREFIX}/login?'
            f'{e(urlencode({"next": next_url}))}">Sign in</a></p>'
        )

    async def get_signup(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        next_url = _safe_next(req.query.get("next"))
        if not self._registration_enabled:
            return page.render(
                "Create account",
                "<p>This server does not accept new accounts.</p>"
                + self._login_form(page, next_url),
                status=403,
            )
        hint = req.query.get("hint", "")[:255]
        return page.render(
            "Create account", self._signup_form(page, next_url, hint=hint)
        )

    async def post_signup(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        if form is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        next_url = _safe_next(form.get("next"))
        password = form.get("password", "")
        if password != form.get("password2", ""):
            error: str = "The passwords differ."
        else:
            try:
                user_id = await self._signup.register_with_password(
                    form.get("username", "").strip(), password, form.get("token")
                )
            except MatrixError as err:
                error = err.message
            else:
                return await self._signed_in(page, user_id, next_url)
        return page.render(
            "Create account", self._signup_form(page, next_url, error), status=400
        )

    # -- consent -----------------------------------------------------------------------------

    async def _consent_request(
        self, req: MatrixRequest, request_id: str | None
    ) -> AuthorizationRequestRow | None:
        if not request_id:
            return None
        return await self._grants.get_request(request_id)

    async def get_consent(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        request = await self._consent_request(req, req.query.get("request"))
        if request is None:
            return error_page(page, "This sign-in request expired. Start again.", 404)
        user_id = await self._user(req)
        if user_id is None:
            return page.redirect(
                f"{PREFIX}/login?" + urlencode({"next": req.raw.path_qs})
            )
        return await self._consent_page(page, request.client_id, request.scope,
                                        user_id, request.request_id,
                                        request.redirect_uri)  # fmt: skip

    async def _consent_page(
        self,
        page: Page,
        client_id: str,
        scope: str,
        user_id: str,
        request_id: str,
        redirect_uri: str | None,
        *,
        action: str = "consent",
        field: str = "request",
    ) -> web.Response:
        client = await self._grants.get_client(client_id)
        name = client.client_name or client.client_uri
        logo = client.logo_uri
        logo_source = source_of(logo) if logo else None
        img = [logo_source] if logo_source else []
        device = parse_scope(scope).device_id
        body = (
            (f'<img class="logo" src="{e(logo)}" alt="" referrerpolicy="no-referrer">'
             if img else "")
            + f"<p><strong>{e(name)}</strong> "
            f'(<a href="{e(client.client_uri)}" rel="noreferrer">{e(client.client_uri)}</a>)'
            f" wants to access your account <strong>{e(user_id)}</strong>.</p>"
            "<ul><li>Read and send messages and change account settings, as any "
            "Matrix app can.</li>"
            + (f"<li>Sign in as the device <code>{e(device)}</code>.</li>" if device
               else "<li>Sign in as a new device.</li>")
            + "</ul>"
            f'<form method="post" action="{PREFIX}/{action}">{page.csrf_input()}'
            f'<input type="hidden" name="{field}" value="{e(request_id)}">'
            '<button type=submit name="action" value="allow">Allow</button> '
            '<button type=submit name="action" value="deny" class="secondary">Deny'
            "</button></form>"
            f'<p>Not you? <a href="{PREFIX}/account">Manage your account</a></p>'
        )  # fmt: skip
        target = source_of(redirect_uri) if redirect_uri else None
        return page.render(
            "Allow access?", body, img_sources=img,
            form_targets=[target] if target else [],
        )  # fmt: skip

    async def post_consent(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        if form is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        request = await self._consent_request(req, form.get("request"))
        user_id = await self._user(req)
        if request is None or user_id is None:
            return error_page(page, "This sign-in request expired. Start again.", 404)
        params: list[tuple[str, str]]
        if form.get("action") == "allow":
            code = await self._grants.approve_request(request.request_id, user_id)
            if code is None:
                return error_page(page, "This sign-in request was already used.", 409)
            params = [("code", code)]
        else:
            await self._grants.deny_request(request.request_id)
            params = [("error", "access_denied"),
                      ("error_description", "The user denied access.")]  # fmt: skip
        if request.state is not None:
            params.append(("state", request.state))
        return page.redirect(
            redirect_to_client(request.redirect_uri, request.response_mode, params)
        )

    # -- device grant ------------------------------------------------------------------------

    async def get_device(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        user_code = req.query.get("user_code")
        user_id = await self._user(req)
        if user_id is None:
            return page.redirect(
                f"{PREFIX}/login?" + urlencode({"next": req.raw.path_qs})
            )
        if user_code:
            grant = await self._grants.get_device_grant(user_code)
            if grant is not None:
                return await self._consent_page(
                    page, grant.client_id, grant.scope, user_id, user_code, None,
                    action="device", field="user_code",
                )  # fmt: skip
        error = '<p class="error">Unknown or expired code.</p>' if user_code else ""
        return page.render(
            "Sign in a device",
            error + f'<form method="get" action="{PREFIX}/device">'
            '<label for="user_code">Code shown on the device</label>'
            '<input id="user_code" name="user_code" autocomplete="off" required>'
            "<button type=submit>Continue</button></form>",
        )

    async def post_device(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        user_id = await self._user(req)
        if form is None or user_id is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        approve = form.get("action") == "allow"
        ok = await self._grants.decide_device_grant(
            form.get("user_code", ""), user_id, approve
        )
        if not ok:
            return error_page(page, "Unknown or expired code.", 404)
        message = "The device is signed in." if approve else "The request was denied."
        return page.render("Done", f"<p>{message} You can close this page.</p>")

    # -- account management ----------------------------------------------------------------

    async def get_account(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        user_id = await self._user(req)
        if user_id is None:
            return page.redirect(
                f"{PREFIX}/login?" + urlencode({"next": req.raw.path_qs})
            )
        if req.query.get("action") == RESET_ACTION:
            return page.render(
                "Reset your identity?",
                "<p>Allow an app signed in as <strong>"
                f"{e(user_id)}</strong> to replace your cross-signing keys in the next "
                "10 minutes. Do this only if you lost your recovery key and no other "
                "device can verify you: other people will see a new identity.</p>"
                f'<form method="post" action="{PREFIX}/account/cross_signing_reset">'
                f"{page.csrf_input()}<button type=submit>Allow the reset</button></form>",
            )
        only = req.query.get("device_id")
        devices = [
            d for d in await self._devices.get_devices(user_id)
            if only is None or d.device_id == only
        ]  # fmt: skip
        items = "".join(
            f"<li><strong>{e(d.display_name or d.device_id)}</strong> "
            f"<code>{e(d.device_id)}</code> "
            f'<form class="inline" method="post" action="{PREFIX}/account/end_session">'
            f'{page.csrf_input()}<input type="hidden" name="device_id" '
            f'value="{e(d.device_id)}"><button type=submit class="secondary">Sign out'
            "</button></form></li>"
            for d in devices
        )
        return page.render(
            "Your sessions",
            f"<p>Signed in as <strong>{e(user_id)}</strong>.</p>"
            f"<ul>{items or '<li>No sessions.</li>'}</ul>"
            "<h2>Change password</h2>"
            f'<form method="post" action="{PREFIX}/account/password">'
            f"{page.csrf_input()}"
            '<label for="current">Current password</label><input id="current" '
            'name="current" type="password" autocomplete="current-password" required>'
            '<label for="password">New password</label><input id="password" '
            'name="password" type="password" autocomplete="new-password" required>'
            '<label for="password2">Repeat the new password</label><input '
            'id="password2" name="password2" type="password" '
            'autocomplete="new-password" required>'
            '<label><input type="checkbox" name="logout" value="1"> Sign out every '
            "session</label><button type=submit>Change password</button></form>"
            f'<form method="post" action="{PREFIX}/logout">{page.csrf_input()}'
            '<button type=submit class="secondary">Sign out of this browser</button>'
            "</form>",
        )

    async def end_session(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        user_id = await self._user(req)
        if form is None or user_id is None or not form.get("device_id"):
            return error_page(page, "The form expired; go back and try again.", 403)
        await self._devices.delete_devices(user_id, [form["device_id"]])
        return page.redirect(f"{PREFIX}/account")

    async def change_password(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        user_id = await self._user(req)
        if form is None or user_id is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        user = await self._login.find_user(user_id)
        if not await self._login.check_password(user, form.get("current", "")):
            return error_page(page, "The current password is wrong.", 401)
        if form.get("password", "") != form.get("password2", ""):
            return error_page(page, "The new passwords differ.")
        try:
            await self._devices.change_password(
                TokenOwner(user_id, "", False, -1),
                form.get("password", ""),
                logout_devices=form.get("logout") == "1",
            )
        except MatrixError as err:
            return error_page(page, err.message)
        return page.render("Password changed", "<p>Your password was changed.</p>")

    async def cross_signing_reset(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        form = await self._form(req, page)
        user_id = await self._user(req)
        if form is None or user_id is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        await self._reset_approver.approve(user_id)
        return page.render(
            "Reset allowed",
            "<p>Go back to the app to finish resetting your identity.</p>",
        )

    async def logout(self, req: MatrixRequest) -> web.StreamResponse:
        page = self._page(req)
        if await self._form(req, page) is None:
            return error_page(page, "The form expired; go back and try again.", 403)
        await self._browsers.end(req.raw.cookies.get(SESSION_COOKIE))
        response = page.redirect(f"{PREFIX}/login")
        response.del_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def endpoints(self) -> list[Endpoint]:
        def ep(
            method: str, path: str, handler: Handler, limit: str | None = None
        ) -> Endpoint:
            return Endpoint(
                method, (PREFIX + path,), handler, auth=AuthMode.NONE, ratelimit=limit
            )

        return [
            ep("GET", "/authorize", self.authorize, "default"),
            ep("GET", "/login", self.get_login),
            ep("POST", "/login", self.post_login, "login"),
            ep("GET", "/signup", self.get_signup),
            ep("POST", "/signup", self.post_signup, "registration"),
            ep("GET", "/consent", self.get_consent),
            ep("POST", "/consent", self.post_consent, "default"),
            ep("GET", "/device", self.get_device),
            ep("POST", "/device", self.post_device, "default"),
            ep("GET", "/account", self.get_account),
            ep("POST", "/account/end_session", self.end_session, "default"),
            ep(
                "POST",
                "/account/cross_signing_reset",
                self.cross_signing_reset,
                "default",
            ),
            ep("POST", "/account/password", self.change_password, "login"),
            ep("POST", "/logout", self.logout),
        ]

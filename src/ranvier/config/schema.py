"""The typed configuration: frozen dataclasses, one per YAML section.

Each field carries a `Setting` in its metadata: the documentation shown in the generated
sample and README, the parser for its YAML value, and, for paths and URLs that depend on
other keys, a derived default. `validate.py` and `sample.py` walk these tables, so adding a
key means adding one field here.

Defaults are what a production operator should get when a key is absent. Defaults that
depend on other keys (`<data_dir>/signing.key`, `https://<server_name>/`) are derived by
the loader; the plain dataclass defaults are placeholders for code that builds a config
directly (tests).
"""

# The `setting`/`section` helpers below return `dataclasses.field(...)`; RUF009 cannot see
# through them.
# ruff: noqa: RUF009

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from ranvier.config import values as v
from ranvier.config.values import Context, IPNetwork, Parser

T = TypeVar("T")

META_KEY = "ranvier"


@dataclass(frozen=True, slots=True)
class Setting:
    """How one key is documented, parsed and defaulted.

    Exactly one of `parse` (a scalar or list value) and `section` (a nested mapping, or a
    list of them when `many`) is set.
    """

    doc: str
    parse: Parser[Any] | None = None
    section: type[Any] | None = None
    many: bool = False
    derive: Callable[[Context], object] | None = None
    default_doc: str | None = None
    example: object = None
    secret: bool = False
    dump: Callable[[Any], object] | None = None
    # The sample shows the default commented out, so that future releases can extend it.
    comment_default: bool = False


def setting(
    default: T,
    doc: str,
    parse: Parser[Any],
    *,
    derive: Callable[[Context], object] | None = None,
    default_doc: str | None = None,
    example: object = None,
    secret: bool = False,
    dump: Callable[[Any], object] | None = None,
    comment_default: bool = False,
) -> T:
    meta = Setting(
        doc,
        parse=parse,
        derive=derive,
        default_doc=default_doc,
        example=example,
        secret=secret,
        dump=dump,
        comment_default=comment_default,
    )
    return field(default=default, metadata={META_KEY: meta})


def required(doc: str, parse: Parser[Any], *, example: object = None) -> Any:
    return field(metadata={META_KEY: Setting(doc, parse=parse, example=example)})


def section(cls: type[T], doc: str, default: T) -> T:
    return field(default=default, metadata={META_KEY: Setting(doc, section=cls)})


def optional_section(cls: type[T], doc: str) -> T | None:
    return field(default=None, metadata={META_KEY: Setting(doc, section=cls)})


def section_list(cls: type[T], doc: str, default: tuple[T, ...]) -> tuple[T, ...]:
    return field(
        default=default, metadata={META_KEY: Setting(doc, section=cls, many=True)}
    )


def setting_of(fld: Any) -> Setting:
    """The `Setting` of a `dataclasses.Field`."""
    meta = fld.metadata[META_KEY]
    assert isinstance(meta, Setting)
    return meta


# --- choices -------------------------------------------------------------------------------
# Literal types rather than enums: consumers compare and pass plain strings
# (`"federation" in listener.resources`), and mypy still checks every value.

# What a listener serves:
#   client      /_matrix/client (incl. authenticated media, /_matrix/client/v1/media),
#               /.well-known/matrix/client
#   federation  /_matrix/federation (incl. media), /.well-known/matrix/server
#   keys        /_matrix/key (server signing keys; needed by federation)
#   media       /_matrix/media (uploads, legacy downloads)
#   admin       the admin API
#   metrics     /metrics (Prometheus)
Resource = Literal["client", "federation", "keys", "media", "admin", "metrics"]
DatabaseEngine = Literal["sqlite", "postgres"]
EmailTls = Literal["none", "starttls", "implicit"]
LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]
LogFormat = Literal["text", "json"]

RESOURCES: tuple[Resource, ...] = get_args(Resource)


# --- defaults ------------------------------------------------------------------------------

# Addresses a homeserver must never connect to on a remote party's say-so: federation
# destinations and URL-preview targets come from untrusted input, and reaching these would
# let anyone probe or attack the operator's internal network (SSRF).
DEFAULT_IP_RANGE_BLOCKLIST: tuple[IPNetwork, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, incl. cloud metadata services
        "172.16.0.0/12",  # private (RFC 1918)
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation (TEST-NET-1)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast
        "192.168.0.0/16",  # private (RFC 1918)
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation (TEST-NET-2)
        "203.0.113.0/24",  # documentation (TEST-NET-3)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::ffff:0:0/96",  # IPv4-mapped: would smuggle the IPv4 ranges above
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard-only
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "fc00::/7",  # unique-local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)


def _data_dir(ctx: Context) -> Path:
    data_dir = ctx.root.get("data_dir")
    return data_dir if isinstance(data_dir, Path) else ctx.base_dir


def _server_host(ctx: Context) -> str:
    name = ctx.root.get("server_name")
    if not isinstance(name, str):
        return "localhost"
    return v.split_server_name(name)[0]


def _derive_baseurl(ctx: Context) -> str:
    name = ctx.root.get("server_name")
    return f"https://{name if isinstance(name, str) else 'localhost'}/"


def _derive_smtp_port(ctx: Context) -> int:
    tls = ctx.section.get("tls")
    if tls == "none":
        return 25
    if tls == "implicit":
        return 465
    return 587


def _dump_networks(networks: tuple[IPNetwork, ...]) -> list[str]:
    return [str(n) for n in networks]


def _dump_resources(resources: frozenset[Resource]) -> list[str]:
    return [r for r in RESOURCES if r in resources]


# --- sections ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    certificate_path: Path = required(
        "PEM file with the certificate chain, leaf first.",
        v.path,
        example="/etc/ranvier/tls/fullchain.pem",
    )
    private_key_path: Path = required(
        "PEM file with the certificate's private key.",
        v.path,
        example="/etc/ranvier/tls/privkey.pem",
    )


_DEFAULT_RESOURCES: frozenset[Resource] = frozenset(
    {"client", "federation", "keys", "media"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenerConfig:
    port: int = setting(
        8008,
        "TCP port to listen on. 0 picks a free port (tests only).",
        v.integer(0, 65535),
    )
    bind_addresses: tuple[str, ...] = setting(
        ("127.0.0.1",),
        "IP addresses to bind. The default serves only this machine, for use behind a "
        "reverse proxy on the same host (the recommended setup). Use ['::', '0.0.0.0'] "
        "to accept connections from anywhere.",
        v.list_of(v.ip_address, min_items=1),
    )
    resources: frozenset[Resource] = setting(
        _DEFAULT_RESOURCES,
        "What this listener serves: client, federation, keys, media, admin, metrics. "
        "Keep admin and metrics on a listener that is not reachable from the internet.",
        v.set_of(v.one_of(get_args(Resource)), min_items=1),
        dump=_dump_resources,
    )
    x_forwarded: bool = setting(
        False,
        "Trust the X-Forwarded-For and X-Forwarded-Proto headers for the client address "
        "and scheme. Enable only when a reverse proxy you control sets them; otherwise "
        "clients can forge their address and dodge rate limits.",
        v.boolean,
    )
    tls: TlsConfig | None = optional_section(
        TlsConfig,
        "Serve HTTPS directly. Default: plain HTTP, with TLS terminated at the reverse "
        "proxy.",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseConfig:
    engine: DatabaseEngine = setting(
        "sqlite",
        "sqlite (embedded, one file, fine for small servers) or postgres (production).",
        v.one_of(get_args(DatabaseEngine)),
    )
    path: Path = setting(
        Path("homeserver.db"),
        "SQLite database file. Used only with engine: sqlite.",
        v.path,
        derive=lambda ctx: _data_dir(ctx) / "homeserver.db",
        default_doc="<data_dir>/homeserver.db",
    )
    dsn: str | None = setting(
        None,
        "PostgreSQL connection string (libpq URI or key=value form); required with "
        "engine: postgres. Keep the password out of the file with ${VAR}.",
        v.string,
        example="postgresql://ranvier:${RANVIER_DB_PASSWORD}@localhost/ranvier",
        secret=True,
    )
    pool_size: int = setting(
        10,
        "Maximum open PostgreSQL connections.",
        v.integer(1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrationConfig:
    enabled: bool = setting(
        False,
        "Let anyone create an account through the client API. Off by default: open "
        "registration attracts spam accounts.",
        v.boolean,
    )
    require_token: bool = setting(
        True,
        "When registration is enabled, require a registration token (created with "
        "`ranvier registration-token`). Set false for fully open registration.",
        v.boolean,
    )
    allow_guests: bool = setting(
        False,
        "Allow guest accounts (read-only access to rooms that permit guests).",
        v.boolean,
    )
    shared_secret: str | None = setting(
        None,
        "Synapse's registration_shared_secret: lets scripts holding it create accounts "
        "(admins included) through POST /_synapse/admin/v1/register, as "
        "register_new_matrix_user does, even while registration is disabled.",
        v.string,
        example="${RANVIER_REGISTRATION_SECRET}",
        secret=True,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class OAuthConfig:
    enabled: bool = setting(
        False,
        "Be the OAuth 2.0 authorization server of the Matrix spec's OAuth 2.0 API "
        "(next-generation auth: Element X signs up only this way). The issuer is "
        "public_baseurl, which must then be the https URL browsers reach. Off by "
        "default: clients that see it switch to browser sign-in.",
        v.boolean,
    )
    password_api: bool = setting(
        True,
        "While OAuth is on, keep password login (/login m.login.password) and UIA "
        "registration (/register) for clients without OAuth support. False: OAuth "
        "only, like a server delegating auth to the Matrix Authentication Service.",
        v.boolean,
    )
    access_token_lifetime: int = setting(
        300,
        "Lifetime of access tokens issued through OAuth; clients renew them with "
        "their refresh token. Seconds, or a duration such as '5m'.",
        v.duration(30),
        dump=v.format_duration,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitBucket:
    per_second: float = setting(
        1.0,
        "Sustained rate: actions per second.",
        v.positive_number(),
    )
    burst: int = setting(
        10,
        "Actions allowed at once before the sustained rate applies.",
        v.integer(1),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitsConfig:
    enabled: bool = setting(True, "Apply the rate limits below.", v.boolean)
    login: RateLimitBucket = section(
        RateLimitBucket,
        "Login attempts, per client address.",
        RateLimitBucket(per_second=0.17, burst=3),
    )
    registration: RateLimitBucket = section(
        RateLimitBucket,
        "Registration attempts, per client address.",
        RateLimitBucket(per_second=0.17, burst=3),
    )
    message: RateLimitBucket = section(
        RateLimitBucket,
        "Events sent, per user.",
        RateLimitBucket(per_second=0.2, burst=10),
    )
    default: RateLimitBucket = section(
        RateLimitBucket,
        "Every other request, per user or client address.",
        RateLimitBucket(per_second=10.0, burst=50),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationConfig:
    enabled: bool = setting(
        True,
        "Talk to other Matrix servers. When false, the server is a closed island.",
        v.boolean,
    )
    verify_tls: bool = setting(
        True,
        "Verify other servers' TLS certificates. Only ever disable in test networks.",
        v.boolean,
    )
    ca_file: Path | None = setting(
        None,
        "PEM bundle of extra certificate authorities to trust for federation, on top of "
        "the system's trust store (private test networks).",
        v.path,
        example="/etc/ranvier/federation-ca.pem",
    )
    ip_range_blocklist: tuple[IPNetwork, ...] = setting(
        DEFAULT_IP_RANGE_BLOCKLIST,
        "Never connect to these addresses when talking to other servers: stops remote "
        "parties from making this server reach into the internal network. Replacing "
        "the list drops the defaults; to open one range, use ip_range_allowlist.",
        v.list_of(v.ip_network),
        dump=_dump_networks,
        default_doc="every private, loopback, link-local, CGNAT, multicast, reserved, "
        "documentation and unique-local IPv4 and IPv6 range (the list shown)",
        comment_default=True,
    )
    ip_range_allowlist: tuple[IPNetwork, ...] = setting(
        (),
        "Exceptions to ip_range_blocklist, e.g. a federation test network on 10.0.0.0/8.",
        v.list_of(v.ip_network),
        dump=_dump_networks,
    )
    trusted_key_servers: tuple[str, ...] = setting(
        ("matrix.org",),
        "Notary servers asked for another server's signing keys when that server cannot "
        "be reached directly, as when joining rooms with events from servers that are "
        "gone. They learn which servers you federate with; set [] for privacy, at the "
        "cost of failing to verify such events.",
        v.list_of(v.server_name),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class UrlPreviewConfig:
    enabled: bool = setting(
        False,
        "Fetch web pages to show link previews. Off by default: the server then fetches "
        "any URL a user posts, which leaks that activity and needs the blocklist below.",
        v.boolean,
    )
    ip_range_blocklist: tuple[IPNetwork, ...] = setting(
        DEFAULT_IP_RANGE_BLOCKLIST,
        "Never fetch previews from these addresses.",
        v.list_of(v.ip_network),
        dump=_dump_networks,
        default_doc="the same ranges as federation.ip_range_blocklist",
        comment_default=True,
    )
    ip_range_allowlist: tuple[IPNetwork, ...] = setting(
        (),
        "Exceptions to the preview blocklist (an intranet wiki, say).",
        v.list_of(v.ip_network),
        dump=_dump_networks,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaConfig:
    store_path: Path = setting(
        Path("media"),
        "Directory for uploaded and cached remote media.",
        v.path,
        derive=lambda ctx: _data_dir(ctx) / "media",
        default_doc="<data_dir>/media",
    )
    max_upload_size: int = setting(
        50 << 20,
        "Largest accepted upload: bytes, or a size with a K, M, G suffix (powers of 1024).",
        v.size(1),
        dump=v.format_size,
    )
    remote_media_lifetime: int = setting(
        90 * 24 * 3600,
        "Delete cached copies of other servers' media nobody has read for this long; "
        "they are fetched again when next asked for. Seconds, or a duration such as "
        "'30d'.",
        v.duration(3600),
        dump=v.format_duration,
    )
    url_preview: UrlPreviewConfig = section(
        UrlPreviewConfig,
        "Link previews (/_matrix/client/v1/media/preview_url).",
        UrlPreviewConfig(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnConfig:
    uris: tuple[str, ...] = setting(
        (),
        "TURN/STUN server URIs handed to clients for VoIP calls. Empty: no TURN.",
        v.list_of(v.turn_uri),
        example=[
            "turn:turn.example.com:3478?transport=udp",
            "turns:turn.example.com:5349",
        ],
    )
    shared_secret: str | None = setting(
        None,
        "Secret shared with the TURN server (coturn `static-auth-secret`), used to mint "
        "short-lived credentials. Use this or username/password, not both.",
        v.string,
        example="${RANVIER_TURN_SECRET}",
        secret=True,
    )
    username: str | None = setting(
        None,
        "Fixed TURN username, for servers without shared-secret support.",
        v.string,
        example="ranvier",
    )
    password: str | None = setting(
        None,
        "Fixed TURN password, with username.",
        v.string,
        example="${RANVIER_TURN_PASSWORD}",
        secret=True,
    )
    user_lifetime: int = setting(
        3600,
        "How long credentials minted from shared_secret stay valid: seconds, or a "
        "duration such as '30m', '1h', '1d'.",
        v.duration(1),
        dump=v.format_duration,
    )
    allow_guests: bool = setting(
        True,
        "Hand TURN credentials to guest accounts too.",
        v.boolean,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class MatrixRtcConfig:
    livekit_service_urls: tuple[str, ...] = setting(
        (),
        "MatrixRTC (Element Call) LiveKit foci: URLs of the LiveKit JWT services "
        "(lk-jwt-service) that hand clients LiveKit tokens for OpenID tokens of this "
        "server. Served by /rtc/transports (MSC4143) and as "
        "org.matrix.msc4143.rtc_foci in /.well-known/matrix/client. Empty: no group "
        "calls.",
        v.list_of(v.service_url),
        example=["https://livekit-jwt.example.com"],
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SupportConfig:
    contacts: tuple[v.SupportContact, ...] = setting(
        (),
        "Who to contact about this server: each with a role (m.role.admin, m.role.security or a namespaced role) and a "
        "matrix_id and/or email_address.",
        v.list_of(v.support_contact),
        example=[{"role": "m.role.admin", "email_address": "admin@example.com"}],
        dump=v.dump_support_contacts,
    )
    page: str | None = setting(
        None,
        "URL of a help page for this server's users. With no contacts and no page, "
        "/.well-known/matrix/support answers 404.",
        v.web_url,
        example="https://example.com/help",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailConfig:
    smtp_host: str | None = setting(
        None,
        "SMTP server for notification and verification mail. Unset: e-mail is off.",
        v.string,
        example="smtp.example.com",
    )
    tls: EmailTls = setting(
        "starttls",
        "none, starttls (upgrade a plain connection; port 587) or implicit (TLS from the "
        "first byte; port 465).",
        v.one_of(get_args(EmailTls)),
    )
    smtp_port: int = setting(
        587,
        "SMTP port.",
        v.integer(1, 65535),
        derive=_derive_smtp_port,
        default_doc="25 for tls: none, 587 for starttls, 465 for implicit",
    )
    smtp_user: str | None = setting(
        None,
        "SMTP login user, if the server needs one.",
        v.string,
        example="ranvier",
    )
    smtp_password: str | None = setting(
        None,
        "SMTP login password, with smtp_user.",
        v.string,
        example="${RANVIER_SMTP_PASSWORD}",
        secret=True,
    )
    notif_from: str = setting(
        "Ranvier <noreply@localhost>",
        "Sender address of mail from this server.",
        v.email_sender,
        derive=lambda ctx: f"Ranvier <noreply@{_server_host(ctx)}>",
        default_doc="Ranvier <noreply@<server_name without port>>",
    )
    notif_delay: int = setting(
        600,
        "E-mail pushers mail a notification only if it is still unread this long after "
        "it arrived, and mail one address at most once per this interval (collecting "
        "what arrived meanwhile). Seconds, or a duration such as '10m'.",
        v.duration(0),
        dump=v.format_duration,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    level: LogLevel = setting(
        "INFO",
        "Minimum level logged: CRITICAL, ERROR, WARNING, INFO or DEBUG.",
        v.one_of(get_args(LogLevel)),
    )
    format: LogFormat = setting(
        "text",
        "text (one readable line per record) or json (one JSON object per line, for log "
        "shippers). Logs go to standard error unless `file` is set.",
        v.one_of(get_args(LogFormat)),
    )
    file: Path | None = setting(
        None,
        "Write logs to this file instead of standard error. SIGHUP reopens it, so "
        "logrotate can move it away and signal the server (no copytruncate needed).",
        v.path,
        example="/var/log/ranvier/homeserver.log",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitsConfig:
    max_request_body_size: int = setting(
        10 << 20,
        "Largest accepted request body other than media uploads (which "
        "media.max_upload_size governs). A federation transaction of 50 events of up "
        "to 64 KiB each plus EDUs fits well within the default.",
        v.size(1024),
        dump=v.format_size,
    )
    default_room_version: str = setting(
        "12",
        "Room version of newly created rooms.",
        v.room_version,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeserverConfig:
    server_name: str = required(
        "The domain in user IDs and room aliases (@alice:<server_name>). It can never "
        "change after users exist. Delegate with .well-known to host the server "
        "elsewhere.",
        v.server_name,
        example="example.com",
    )
    public_baseurl: str = setting(
        "https://localhost/",
        "URL clients use to reach the client API (as seen through any reverse proxy).",
        v.base_url,
        derive=_derive_baseurl,
        default_doc="https://<server_name>/",
    )
    data_dir: Path = setting(
        Path("."),
        "Directory for the server's state; the defaults of the paths below live in it.",
        v.path,
        derive=lambda ctx: ctx.base_dir,
        default_doc="the directory of the first config file",
    )
    signing_key_path: Path = setting(
        Path("signing.key"),
        "The server's ed25519 signing key, in Synapse's format. Back it up: losing it "
        "breaks federation with servers that cached it.",
        v.path,
        derive=lambda ctx: _data_dir(ctx) / "signing.key",
        default_doc="<data_dir>/signing.key",
    )
    app_service_config_files: tuple[Path, ...] = setting(
        (),
        "Application-service registration files (YAML): bridges and bots. Each is "
        "checked at start-up; invalid or conflicting files stop the server.",
        v.list_of(v.path),
        example=["/etc/ranvier/appservices/irc.yaml"],
    )
    listeners: tuple[ListenerConfig, ...] = section_list(
        ListenerConfig,
        "HTTP listeners. Default: one listener on 127.0.0.1:8008 serving client, "
        "federation, keys and media.",
        (ListenerConfig(),),
    )
    database: DatabaseConfig = section(
        DatabaseConfig, "Where data lives.", DatabaseConfig()
    )
    registration: RegistrationConfig = section(
        RegistrationConfig, "Account registration.", RegistrationConfig()
    )
    oauth: OAuthConfig = section(
        OAuthConfig,
        "OAuth 2.0 API: sign-in and sign-up in the browser, for Element X and others.",
        OAuthConfig(),
    )
    rate_limits: RateLimitsConfig = section(
        RateLimitsConfig,
        "Token-bucket rate limits; each bucket refills at per_second and holds burst.",
        RateLimitsConfig(),
    )
    federation: FederationConfig = section(
        FederationConfig, "Talking to other Matrix servers.", FederationConfig()
    )
    media: MediaConfig = section(MediaConfig, "The media repository.", MediaConfig())
    turn: TurnConfig = section(TurnConfig, "TURN servers for VoIP calls.", TurnConfig())
    matrix_rtc: MatrixRtcConfig = section(
        MatrixRtcConfig, "MatrixRTC group calls (Element Call).", MatrixRtcConfig()
    )
    server_support: SupportConfig = section(
        SupportConfig,
        "Support contacts shown to users (/.well-known/matrix/support).",
        SupportConfig(),
    )
    email: EmailConfig = section(EmailConfig, "Outgoing e-mail.", EmailConfig())
    log: LogConfig = section(LogConfig, "Logging.", LogConfig())
    limits: LimitsConfig = section(
        LimitsConfig, "Request and room limits.", LimitsConfig()
    )

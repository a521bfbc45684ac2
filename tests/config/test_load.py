from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from ranvier.config.errors import ConfigError, ConfigProblem
from ranvier.config.load import load_config, merge_layers, parse_config, substitute_env
from ranvier.config.schema import (
    DEFAULT_IP_RANGE_BLOCKLIST,
    HomeserverConfig,
    ListenerConfig,
    RateLimitBucket,
)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load_text(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> HomeserverConfig:
    return load_config([write(tmp_path, "homeserver.yaml", text)], env or {})


def problems_of(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_text(tmp_path, text, env)
    return [str(p) for p in exc.value.problems]


# --- defaults ------------------------------------------------------------------------------


def test_minimal_config_gets_production_defaults(tmp_path: Path) -> None:
    config = load_text(tmp_path, "server_name: example.com\n")
    assert config.server_name == "example.com"
    assert config.public_baseurl == "https://example.com/"
    assert config.data_dir == tmp_path
    assert config.signing_key_path == tmp_path / "signing.key"
    assert config.listeners == (
        ListenerConfig(
            port=8008,
            bind_addresses=("127.0.0.1",),
            resources=frozenset({"client", "federation", "keys", "media"}),
            x_forwarded=False,
            tls=None,
        ),
    )
    assert config.database.engine == "sqlite"
    assert config.database.path == tmp_path / "homeserver.db"
    assert config.database.dsn is None
    assert config.database.pool_size == 10
    assert not config.registration.enabled
    assert config.registration.require_token
    assert not config.registration.allow_guests
    assert config.rate_limits.enabled
    assert config.rate_limits.login == RateLimitBucket(per_second=0.17, burst=3)
    assert config.rate_limits.message == RateLimitBucket(per_second=0.2, burst=10)
    assert config.federation.enabled
    assert config.federation.verify_tls
    assert config.federation.ip_range_blocklist == DEFAULT_IP_RANGE_BLOCKLIST
    assert config.federation.trusted_key_servers == ("matrix.org",)
    assert config.media.store_path == tmp_path / "media"
    assert config.media.max_upload_size == 50 * 1024 * 1024
    assert not config.media.url_preview.enabled
    assert config.media.url_preview.ip_range_blocklist == DEFAULT_IP_RANGE_BLOCKLIST
    assert config.turn.uris == ()
    assert config.turn.user_lifetime == 3600
    assert config.email.smtp_host is None
    assert config.email.tls == "starttls"
    assert config.email.smtp_port == 587
    assert config.email.notif_from == "Ranvier <noreply@example.com>"
    assert config.log.level == "INFO"
    assert config.log.format == "text"
    assert config.limits.max_request_body_size == 10 * 1024 * 1024
    assert config.limits.default_room_version == "12"


def test_default_blocklist_covers_internal_ranges() -> None:
    def blocked(address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in net for net in DEFAULT_IP_RANGE_BLOCKLIST)

    for address in (
        "127.0.0.1",
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fd00::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
    ):
        assert blocked(address), address
    for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"):
        assert not blocked(address), address


def test_derived_defaults_follow_data_dir_and_server_name(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        server_name: "example.org:8448"
        data_dir: state
        email: {tls: implicit}
        """,
    )
    assert config.data_dir == tmp_path / "state"
    assert config.signing_key_path == tmp_path / "state" / "signing.key"
    assert config.database.path == tmp_path / "state" / "homeserver.db"
    assert config.media.store_path == tmp_path / "state" / "media"
    assert config.public_baseurl == "https://example.org:8448/"
    assert config.email.notif_from == "Ranvier <noreply@example.org>"
    assert config.email.smtp_port == 465


@pytest.mark.parametrize(
    ("email", "port"),
    [
        ("{tls: none}", 25),
        ("{tls: starttls}", 587),
        ("{tls: none, smtp_port: 2525}", 2525),
    ],
)
def test_smtp_port_follows_tls_mode(tmp_path: Path, email: str, port: int) -> None:
    config = load_text(tmp_path, f"server_name: example.com\nemail: {email}\n")
    assert config.email.smtp_port == port


def test_partial_bucket_keeps_that_buckets_defaults(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        server_name: example.com
        rate_limits:
          login: {burst: 5}
          default: {per_second: "2.5"}
        """,
    )
    assert config.rate_limits.login == RateLimitBucket(per_second=0.17, burst=5)
    assert config.rate_limits.default == RateLimitBucket(per_second=2.5, burst=50)
    assert config.rate_limits.registration == RateLimitBucket(per_second=0.17, burst=3)


def test_full_config(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        server_name: example.com
        public_baseurl: https://matrix.example.com
        listeners:
          - port: 8448
            bind_addresses: ["::", "0.0.0.0"]
            resources: [federation, keys]
            tls:
              certificate_path: tls/cert.pem
              private_key_path: /etc/tls/key.pem
          - port: 9000
            resources: [admin, metrics]
            x_forwarded: true
        database: {engine: postgres, dsn: "postgresql://u@db/ranvier", pool_size: 20}
        registration: {enabled: true, require_token: false, allow_guests: true}
        federation:
          verify_tls: false
          ca_file: ca.pem
          ip_range_allowlist: [10.1.0.0/16]
          trusted_key_servers: []
        media:
          max_upload_size: 100M
          url_preview: {enabled: true, ip_range_blocklist: [10.0.0.0/8]}
        turn:
          uris: ["turn:turn.example.com?transport=udp"]
          shared_secret: s3cret
          user_lifetime: 1d
          allow_guests: false
        email: {smtp_host: smtp.example.com, smtp_user: me, smtp_password: pw,
                notif_from: "Me <me@example.com>"}
        log: {level: debug, format: json}
        limits: {max_request_body_size: 1M, default_room_version: 11}
        """,
    )
    first, second = config.listeners
    assert config.public_baseurl == "https://matrix.example.com/"
    assert first.bind_addresses == ("::", "0.0.0.0")
    assert first.resources == frozenset({"federation", "keys"})
    assert first.tls is not None
    assert first.tls.certificate_path == tmp_path / "tls" / "cert.pem"
    assert first.tls.private_key_path == Path("/etc/tls/key.pem")
    assert second.x_forwarded
    assert second.bind_addresses == ("127.0.0.1",)
    assert config.database.engine == "postgres"
    assert config.database.pool_size == 20
    assert config.registration.allow_guests
    assert not config.federation.verify_tls
    assert config.federation.ca_file == tmp_path / "ca.pem"
    assert config.federation.ip_range_allowlist == (
        ipaddress.ip_network("10.1.0.0/16"),
    )
    assert config.federation.trusted_key_servers == ()
    assert config.media.max_upload_size == 100 << 20
    assert config.media.url_preview.ip_range_blocklist == (
        ipaddress.ip_network("10.0.0.0/8"),
    )
    assert config.turn.user_lifetime == 86400
    assert config.turn.shared_secret == "s3cret"
    assert config.email.smtp_port == 587
    assert config.log.level == "DEBUG"
    assert config.log.format == "json"
    assert config.limits.max_request_body_size == 1 << 20
    assert config.limits.default_room_version == "11"


# --- layering ------------------------------------------------------------------------------


def test_later_files_override_earlier(tmp_path: Path) -> None:
    base = write(
        tmp_path,
        "homeserver.yaml",
        """
        server_name: example.com
        database: {engine: postgres, dsn: "postgresql://old", pool_size: 5}
        listeners:
          - {port: 8008, bind_addresses: ["127.0.0.1", "::1"]}
        log: {level: INFO}
        """,
    )
    overlay = write(
        tmp_path / "elsewhere",
        "prod.yaml",
        """
        database: {dsn: "postgresql://new"}
        listeners:
          - {port: 9000}
        log: {level: WARNING}
        media: {store_path: media-here}
        """,
    )
    config = load_config([base, overlay], {})
    # Mappings merge key by key...
    assert config.database.engine == "postgres"
    assert config.database.pool_size == 5
    assert config.database.dsn == "postgresql://new"
    # ...lists and scalars replace.
    assert config.listeners == (ListenerConfig(port=9000),)
    assert config.log.level == "WARNING"
    # Relative paths resolve against the first file's directory, whichever file sets them.
    assert config.media.store_path == tmp_path / "media-here"

    reverse = load_config([overlay, base], {})
    assert reverse.database.dsn == "postgresql://old"
    assert reverse.log.level == "INFO"
    assert reverse.media.store_path == tmp_path / "elsewhere" / "media-here"


def test_null_and_empty_layers(tmp_path: Path) -> None:
    base = write(tmp_path, "a.yaml", "server_name: example.com\nlog: {level: DEBUG}\n")
    empty = write(tmp_path, "b.yaml", "# nothing here\n")
    reset = write(tmp_path, "c.yaml", "log: null\n")
    assert load_config([base, empty], {}).log.level == "DEBUG"
    assert load_config([base, reset], {}).log.level == "INFO"


def test_merge_layers_is_recursive_and_does_not_mutate() -> None:
    base: dict[str, object] = {"a": {"b": 1, "c": {"d": 2}}, "l": [1, 2]}
    overlay: dict[str, object] = {"a": {"c": {"e": 3}}, "l": [3]}
    merged = merge_layers(base, overlay)
    assert merged == {"a": {"b": 1, "c": {"d": 2, "e": 3}}, "l": [3]}
    assert base == {"a": {"b": 1, "c": {"d": 2}}, "l": [1, 2]}


# --- environment substitution --------------------------------------------------------------


def test_env_substitution(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        server_name: ${SERVER}
        database:
          engine: postgres
          dsn: "postgresql://ranvier:${DB_PASSWORD}@${DB_HOST:-localhost}/ranvier"
          pool_size: ${POOL}
        listeners:
          - port: ${PORT:-8008}
            bind_addresses: ["${BIND}"]
        turn: {shared_secret: "$${not-a-var}${EMPTY:-fallback}"}
        email: {smtp_password: "${EMPTY:-pw}", smtp_user: u, smtp_host: "${HOST:-}x"}
        """,
        env={
            "SERVER": "example.com",
            "DB_PASSWORD": "p@ss",
            "POOL": "7",
            "BIND": "::1",
            "EMPTY": "",
        },
    )
    assert config.server_name == "example.com"
    assert config.database.dsn == "postgresql://ranvier:p@ss@localhost/ranvier"
    assert config.database.pool_size == 7
    assert config.listeners[0].port == 8008
    assert config.listeners[0].bind_addresses == ("::1",)
    assert config.turn.shared_secret == "${not-a-var}fallback"
    assert config.email.smtp_host == "x"
    assert config.email.smtp_password == "pw"


def test_env_problems_name_the_key(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """
        server_name: example.com
        database: {engine: postgres, dsn: "${DB_DSN}", pool_size: "${POOL}"}
        turn: {uris: ["turn:${TURN_HOST"], shared_secret: "${1BAD}"}
        """,
    )
    assert problems == [
        "database.dsn: environment variable DB_DSN is not set "
        "(write ${DB_DSN:-default} to give a default)",
        "database.pool_size: environment variable POOL is not set "
        "(write ${POOL:-default} to give a default)",
        "turn.uris[0]: unterminated '${' (write '$$' for a '$')",
        "turn.shared_secret: malformed reference '${1BAD}': expected ${NAME}",
    ]


def test_substitute_env_leaves_non_strings_alone() -> None:
    value, problems = substitute_env({"a": [1, True, None, "$HOME ${X}"]}, {"X": "y"})
    assert value == {"a": [1, True, None, "$HOME y"]}
    assert problems == []


def test_config_never_reads_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANVIER_TEST_SERVER", "from-os-environ.example")
    problems = problems_of(tmp_path, "server_name: ${RANVIER_TEST_SERVER}\n")
    assert problems[0].startswith(
        "server_name: environment variable RANVIER_TEST_SERVER"
    )


# --- validation errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        (
            "database: {pool_size: abc}",
            "database.pool_size: expected an integer >= 1, got 'abc'",
        ),
        (
            "database: {pool_size: 0}",
            "database.pool_size: expected an integer >= 1, got 0",
        ),
        (
            "database: {engine: mysql}",
            "database.engine: expected one of 'sqlite', 'postgres', got 'mysql'",
        ),
        ("database: {path: ''}", "database.path: expected a file system path, got ''"),
        ("database: [1]", "database: expected a mapping, got a list"),
        (
            "public_baseurl: example.com",
            "public_baseurl: expected an http:// or https:// URL",
        ),
        ("data_dir: 5", "data_dir: expected a file system path, got 5"),
        (
            "signing_key_path: [a]",
            "signing_key_path: expected a file system path, got a list",
        ),
        (
            "listeners: []",
            "listeners: expected a list of at least one mapping, got an empty list",
        ),
        ("listeners: {port: 1}", "listeners: expected a list of at least one mapping"),
        ("listeners: [5]", "listeners[0]: expected a mapping, got 5"),
        (
            "listeners: [{port: 70000}]",
            "listeners[0].port: expected an integer between 0 and 65535, got 70000",
        ),
        (
            "listeners: [{bind_addresses: []}]",
            "listeners[0].bind_addresses: expected at least 1",
        ),
        (
            "listeners: [{bind_addresses: ['127.0.0.1', localhost]}]",
            "listeners[0].bind_addresses[1]: expected an IP address",
        ),
        (
            "listeners: [{resources: [client, web]}]",
            "listeners[0].resources[1]: expected one of 'client', 'federation'",
        ),
        (
            "listeners: [{resources: [client, client]}]",
            "listeners[0].resources[1]: duplicate of [0]",
        ),
        (
            "listeners: [{x_forwarded: maybe}]",
            "listeners[0].x_forwarded: expected true or false",
        ),
        (
            "listeners: [{tls: {certificate_path: c.pem}}]",
            "listeners[0].tls.private_key_path: required",
        ),
        (
            "registration: {enabled: 1}",
            "registration.enabled: expected true or false, got 1",
        ),
        (
            "rate_limits: {login: {per_second: 0}}",
            "rate_limits.login.per_second: expected a number > 0",
        ),
        (
            "rate_limits: {message: {burst: 0.5}}",
            "rate_limits.message.burst: expected an integer >= 1",
        ),
        (
            "federation: {ca_file: ''}",
            "federation.ca_file: expected a file system path",
        ),
        (
            "federation: {ip_range_blocklist: [10.0.0.0/8, 300.0.0.0/8]}",
            "federation.ip_range_blocklist[1]: expected an IP address or CIDR range",
        ),
        (
            "federation: {ip_range_allowlist: 10.0.0.0/8}",
            "federation.ip_range_allowlist: expected a list, got '10.0.0.0/8'",
        ),
        (
            "federation: {trusted_key_servers: ['bad name']}",
            "federation.trusted_key_servers[0]: expected a server name",
        ),
        (
            "media: {max_upload_size: 50Q}",
            "media.max_upload_size: expected a size in bytes >= 1",
        ),
        (
            "media: {url_preview: {enabled: sure}}",
            "media.url_preview.enabled: expected true or false",
        ),
        (
            "media: {url_preview: {ip_range_allowlist: [x]}}",
            "media.url_preview.ip_range_allowlist[0]: expected an IP",
        ),
        ("turn: {uris: [http://turn]}", "turn.uris[0]: expected a TURN or STUN URI"),
        (
            "turn: {user_lifetime: forever}",
            "turn.user_lifetime: expected a duration in seconds >= 1 such as 3600, '30m' or "
            "'1h', got 'forever'",
        ),
        ("turn: {username: ''}", "turn.username: expected a non-empty string, got ''"),
        (
            "turn: {allow_guests: null, shared_secret: 5}",
            "turn.shared_secret: expected a non-empty string, got <redacted>",
        ),
        (
            "email: {smtp_host: 5}",
            "email.smtp_host: expected a non-empty string, got 5",
        ),
        (
            "email: {smtp_port: 0}",
            "email.smtp_port: expected an integer between 1 and 65535, got 0",
        ),
        (
            "email: {tls: ssl}",
            "email.tls: expected one of 'none', 'starttls', 'implicit', got 'ssl'",
        ),
        ("email: {notif_from: nobody}", "email.notif_from: expected an e-mail address"),
        (
            "log: {level: LOUD}",
            "log.level: expected one of 'CRITICAL', 'ERROR', 'WARNING', 'INFO', 'DEBUG', got 'LOUD'",
        ),
        ("log: {format: xml}", "log.format: expected one of 'text', 'json', got 'xml'"),
        (
            "limits: {max_request_body_size: 10}",
            "limits.max_request_body_size: expected a size in bytes >= 1024 such as 1048576, "
            "'512K' or '50M', got 10",
        ),
        (
            "limits: {default_room_version: 99}",
            "limits.default_room_version: expected a known room version",
        ),
        (
            "database: {engine: postgres}",
            "database.dsn: required when engine is 'postgres'",
        ),
        (
            "database: {dsn: 'postgresql://x'}",
            "database.dsn: only used with engine 'postgres'",
        ),
        (
            "turn: {shared_secret: a, username: b, password: c}",
            "turn.shared_secret: set either shared_secret or username/password, not both",
        ),
        ("turn: {username: b}", "turn.password: required when username is set"),
        ("turn: {password: c}", "turn.username: required when password is set"),
        (
            "email: {smtp_user: u}",
            "email.smtp_password: required when smtp_user is set",
        ),
        (
            "listeners: [{port: 8008}, {port: 8008, bind_addresses: ['::1', '127.0.0.1']}]",
            "listeners[1].port: 127.0.0.1 port 8008 is already used by listeners[0]",
        ),
    ],
)
def test_each_problem_names_its_key(
    tmp_path: Path, yaml_text: str, problem: str
) -> None:
    problems = problems_of(tmp_path, f"server_name: example.com\n{yaml_text}\n")
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


def test_secret_values_are_not_echoed(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        "server_name: example.com\ndatabase: {engine: postgres, dsn: ['hunter2']}\n",
    )
    assert problems == ["database.dsn: expected a non-empty string, got <redacted>"]


def test_server_name_is_required_and_validated(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "log: {level: INFO}\n") == [
        "server_name: required: expected a server name, e.g. 'example.com'"
    ]
    [problem] = problems_of(tmp_path, "server_name: 'https://example.com'\n")
    assert problem.startswith("server_name: expected a server name")
    assert problem.endswith("got 'https://example.com'")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_text(
            tmp_path,
            """
            server_name: "bad name"
            database: {pool_size: abc, engine: postgres}
            listeners: [{port: -1, resources: []}, {port: x}]
            log: {level: LOUD, colour: true}
            limits: {max_request_body_size: lots}
            """,
        )
    keys = [p.key for p in exc.value.problems]
    assert keys == [
        "server_name",
        "listeners[0].port",
        "listeners[0].resources",
        "listeners[1].port",
        "database.pool_size",
        "database.dsn",
        "log.colour",
        "log.level",
        "limits.max_request_body_size",
    ]
    text = str(exc.value)
    assert text.startswith("invalid configuration (9 problems):\n")
    assert (
        "  database.pool_size: expected an integer >= 1, got 'abc'" in text.splitlines()
    )


# --- unknown keys --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        ("databse: {}", "databse: unknown key; did you mean 'database'?"),
        (
            "database: {pool_sise: 3}",
            "database.pool_sise: unknown key; did you mean 'pool_size'?",
        ),
        (
            "listeners: [{prot: 80}]",
            "listeners[0].prot: unknown key; did you mean 'port'?",
        ),
        ("port: 8008", "port: unknown key; did you mean 'listeners[0].port'?"),
        ("pool_size: 3", "pool_size: unknown key; did you mean 'database.pool_size'?"),
        (
            "media: {preview: {}}",
            "media.preview: unknown key; did you mean 'url_preview'?",
        ),
        (
            "rate_limits: {login: {per_sec: 1}}",
            "rate_limits.login.per_sec: unknown key; did you mean 'per_second'?",
        ),
        ("frobnicate: 1", "frobnicate: unknown key"),
    ],
)
def test_unknown_keys_are_errors_with_hints(
    tmp_path: Path, yaml_text: str, problem: str
) -> None:
    problems = problems_of(tmp_path, f"server_name: example.com\n{yaml_text}\n")
    assert problems == [problem]


def test_non_string_keys(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "server_name: example.com\ndatabase: {1: 2}\n")
    assert problems == ["database: keys must be strings, got 1"]


# --- files ---------------------------------------------------------------------------------


def test_file_problems(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", "server_name: example.com\n")
    broken = write(tmp_path, "broken.yaml", "server_name: [unclosed\n")
    duplicate = write(tmp_path, "dup.yaml", "log: {level: INFO}\nlog: {level: DEBUG}\n")
    scalar = write(tmp_path, "scalar.yaml", "just a string\n")
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as exc:
        load_config([good, broken, duplicate, scalar, missing], {})
    problems = exc.value.problems
    assert [p.key for p in problems] == [
        str(broken),
        str(duplicate),
        str(scalar),
        str(missing),
    ]
    assert problems[0].message.startswith("invalid YAML at line 2, column 1:")
    assert (
        problems[1].message
        == "invalid YAML at line 2, column 1: found duplicate key 'log'"
    )
    assert problems[2].message == "expected a mapping of settings, got 'just a string'"
    assert problems[3].message == "cannot read: No such file or directory"


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    config = load_text(
        tmp_path,
        """
        server_name: example.com
        rate_limits:
          login: &bucket {per_second: 1, burst: 2}
          message: {<<: *bucket, burst: 4}
        """,
    )
    assert config.rate_limits.login == RateLimitBucket(per_second=1.0, burst=2)
    assert config.rate_limits.message == RateLimitBucket(per_second=1.0, burst=4)


def test_no_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file given"):
        load_config([], {})


def test_parse_config_without_files(tmp_path: Path) -> None:
    config = parse_config({"server_name": "example.com"}, base_dir=tmp_path, env={})
    assert config.data_dir == tmp_path
    with pytest.raises(ConfigError) as exc:
        parse_config({"server_name": None}, base_dir=tmp_path, env={})
    assert exc.value.problems == (
        ConfigProblem(
            "server_name", "required: expected a server name, e.g. 'example.com'"
        ),
    )

"""The `ranvier` command: init, check-config, run, register-user, registration-token.

Each subcommand is one `_add_<name>` function that declares its arguments and sets its
handler; adding a command means writing one such function and listing it in `_COMMANDS`.
Handlers take the parsed arguments and return the exit status.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import os
import secrets
import string
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias, cast

import yaml

from ranvier.config.errors import ConfigError
from ranvier.config.load import load_config, parse_config
from ranvier.config.sample import generate_config
from ranvier.config.schema import HomeserverConfig
from ranvier.config.values import split_server_name

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2

Handler = Callable[[argparse.Namespace], int]
# argparse has no public name for the object add_subparsers() returns.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # noqa: SLF001


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler = cast("Handler | None", getattr(args, "handler", None))
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_BAD_CONFIG
    return handler(args)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ranvier", description="Ranvier Matrix homeserver"
    )
    parser.add_argument("--version", action="version", version=f"ranvier {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ranvier")
    except PackageNotFoundError:
        return "unknown"


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML config file; repeat to layer files (later ones override earlier ones)",
    )


def _load(paths: Sequence[str]) -> HomeserverConfig | None:
    """The config, or None after printing every problem to stderr."""
    try:
        return load_config(paths, os.environ)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


# --- init ------------------------------------------------------------------------------


def _add_init(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "init", help="write a commented homeserver.yaml and a new signing key"
    )
    parser.add_argument("--server-name", required=True, help="e.g. example.com")
    parser.add_argument(
        "--data-dir", required=True, type=Path, help="created if missing"
    )
    parser.add_argument("--port", type=int, default=8008, help="listener port (8008)")
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing homeserver.yaml (an existing valid signing key is "
        "kept: replacing it would break federation with servers that cached it)",
    )
    parser.set_defaults(handler=_cmd_init)


def _cmd_init(args: argparse.Namespace) -> int:
    data_dir = cast(Path, args.data_dir).absolute()
    config_path = data_dir / "homeserver.yaml"
    key_path = data_dir / "signing.key"
    try:
        split_server_name(args.server_name)
        text = generate_config(args.server_name, data_dir, args.port)
        # Validate before touching the disk, through the same path `run` uses.
        parse_config(yaml.safe_load(text), base_dir=data_dir, env={})
    except ValueError:
        print(f"error: invalid --server-name {args.server_name!r}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_BAD_CONFIG
    existing = [p for p in (config_path, key_path) if p.exists()]
    if existing and not args.force:
        for p in existing:
            print(
                f"error: {p} already exists; use --force to overwrite", file=sys.stderr
            )
        return EXIT_FAILED
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(config_path, text)
    print(f"wrote {config_path}")
    key_id = read_signing_key_id(key_path) if key_path.exists() else None
    if key_id is not None:
        print(f"kept existing signing key {key_id} in {key_path}")
    else:
        key_line, key_id = generate_signing_key()
        _write_private(key_path, key_line)
        print(f"wrote {key_path} (key {key_id})")
    print(f"next: ranvier run --config {config_path}")
    return EXIT_OK


def generate_signing_key(
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> tuple[str, str]:
    """A new key file line `ed25519 <version> <unpadded base64 seed>` and its key ID.

    The format is Synapse's, so keys move between the two servers unchanged.
    """
    alphabet = string.ascii_letters + string.digits
    version = "a_" + "".join(secrets.choice(alphabet) for _ in range(4))
    seed = base64.b64encode(random_bytes(32)).decode("ascii").rstrip("=")
    return f"ed25519 {version} {seed}\n", f"ed25519:{version}"


def read_signing_key_id(path: Path) -> str | None:
    """The key ID of a valid signing key file, or None if it is unreadable or malformed."""
    try:
        fields = path.read_text(encoding="ascii").splitlines()[0].split()
        seed = base64.b64decode(fields[2] + "=" * (-len(fields[2]) % 4), validate=True)
    except (OSError, UnicodeDecodeError, IndexError, ValueError):
        return None
    if len(fields) != 3 or fields[0] != "ed25519" or len(seed) != 32:
        return None
    return f"ed25519:{fields[1]}"


def _write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only, replacing any old one atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# --- check-config ----------------------------------------------------------------------


def _add_check_config(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "check-config", help="validate config files and exit"
    )
    _add_config_option(parser)
    parser.add_argument(
        "--connect",
        action="store_true",
        help="also connect to the database (PostgreSQL) to check the DSN, role and "
        "database",
    )
    parser.set_defaults(handler=_cmd_check_config)


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_BAD_CONFIG
    # The same checks `run` makes before start-up, with the same exit codes; imported
    # here because the database check needs the driver.
    preflight = importlib.import_module("ranvier.app.preflight")
    checks: list[Callable[[], None]] = [
        lambda: preflight.check_data_dir(Path(config.data_dir)),
        lambda: preflight.check_signing_key(Path(config.signing_key_path)),
    ]
    if args.connect:
        checks.append(lambda: preflight.check_database(config))
    for check in checks:
        try:
            check()
        except preflight.StartupError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return cast(int, exc.exit_code)
    print(f"OK: {summarize(config)}")
    return EXIT_OK


def summarize(config: HomeserverConfig) -> str:
    """One line: the facts an operator checks first."""
    listeners = ", ".join(
        f"{'+'.join(lst.bind_addresses)}:{lst.port}"
        f"[{','.join(sorted(lst.resources))}]{' tls' if lst.tls else ''}"
        for lst in config.listeners
    )
    db = config.database
    database = f"sqlite {db.path}"
    if db.engine == "postgres":
        database = f"postgres (pool {db.pool_size})"
    registration = "off"
    if config.registration.enabled:
        registration = "token" if config.registration.require_token else "open"
    return (
        f"server_name={config.server_name} public_baseurl={config.public_baseurl} "
        f"listeners={listeners} database={database} registration={registration} "
        f"federation={'on' if config.federation.enabled else 'off'}"
    )


# --- run -------------------------------------------------------------------------------


def _add_run(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("run", help="run the homeserver")
    _add_config_option(parser)
    parser.set_defaults(handler=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_BAD_CONFIG
    # Imported here so that init and check-config work without the server's dependencies
    # (aiohttp, database drivers) being importable.
    server = importlib.import_module("ranvier.app.server")
    run = cast(Callable[[HomeserverConfig, Sequence[str]], int], server.run)
    return run(config, args.config)


# --- register-user (accounts, issue #4) -----------------------------------------------


def _add_register_user(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "register-user", help="create an account (works even with registration off)"
    )
    _add_config_option(parser)
    parser.add_argument("--user", required=True, help="localpart or full user ID")
    parser.add_argument(
        "--password",
        help="the password (when omitted: prompted for on a terminal, otherwise read "
        "as the first line of standard input; both avoid shell history)",
    )
    parser.add_argument("--admin", action="store_true", help="make a server admin")
    parser.set_defaults(handler=_cmd_register_user)


def _prompt_password() -> str | None:
    import getpass

    if not sys.stdin.isatty():
        # A pipe or file: `echo "$PW" | ranvier register-user ...`, no prompt, no echo.
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            print("error: no password on standard input", file=sys.stderr)
            return None
        return line
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Confirm password: ")
    except (EOFError, KeyboardInterrupt):
        print("\nerror: no password given", file=sys.stderr)
        return None
    if second != first:
        print("error: passwords do not match", file=sys.stderr)
        return None
    return first


def _cmd_register_user(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_BAD_CONFIG
    password = args.password if args.password is not None else _prompt_password()
    if password is None:
        return EXIT_FAILED
    import asyncio

    from ranvier.app import accounts_cli
    from ranvier.core.errors import MatrixError

    try:
        user_id = asyncio.run(
            accounts_cli.register_user(config, args.user, password, admin=args.admin)
        )
    except (ValueError, MatrixError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"registered {user_id}{' (admin)' if args.admin else ''}")
    return EXIT_OK


# --- registration-token (accounts, issue #4) ------------------------------------------


def _add_registration_token(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "registration-token", help="manage the tokens token-gated registration asks for"
    )
    actions = parser.add_subparsers(title="actions", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a token and print it")
    _add_config_option(create)
    create.add_argument(
        "--uses", type=int, help="how many registrations (default: any)"
    )
    create.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="lifetime, e.g. 30m, 12h, 7d (default: none)",
    )
    create.add_argument(
        "--token", help="the token itself (default: 16 random characters)"
    )
    create.set_defaults(handler=_cmd_registration_token, action="create")
    listing = actions.add_parser("list", help="list tokens with their use counts")
    _add_config_option(listing)
    listing.set_defaults(handler=_cmd_registration_token, action="list")
    delete = actions.add_parser("delete", help="delete a token")
    _add_config_option(delete)
    delete.add_argument("token")
    delete.set_defaults(handler=_cmd_registration_token, action="delete")


def _cmd_registration_token(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_BAD_CONFIG
    import asyncio
    import time

    from ranvier.app import accounts_cli
    from ranvier.app.accounts import parse_duration_ms
    from ranvier.core.errors import MatrixError

    try:
        if args.action == "create":
            expires = (
                None if args.expires_in is None else parse_duration_ms(args.expires_in)
            )
            row = asyncio.run(
                accounts_cli.create_registration_token(
                    config, args.token, uses_allowed=args.uses, expires_in_ms=expires
                )
            )
            print(row.token)
        elif args.action == "list":
            now_ms = time.time_ns() // 1_000_000
            for row in asyncio.run(accounts_cli.list_registration_tokens(config)):
                print(accounts_cli.format_token(row, now_ms))
        elif not asyncio.run(
            accounts_cli.delete_registration_token(config, args.token)
        ):
            print(f"error: no token {args.token!r}", file=sys.stderr)
            return EXIT_FAILED
    except (ValueError, MatrixError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


_COMMANDS: tuple[Callable[[Subparsers], None], ...] = (
    _add_init,
    _add_check_config,
    _add_run,
    _add_register_user,
    _add_registration_token,
)


if __name__ == "__main__":
    raise SystemExit(main())

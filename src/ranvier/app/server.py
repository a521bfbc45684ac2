"""Process lifecycle: logging, event loop, listeners, graceful shutdown on SIGTERM/SIGINT,
reload on SIGHUP."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import sys
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ranvier.api.http import build_http_app
from ranvier.api.http_transport import MatrixAppRunner
from ranvier.app.homeserver import Homeserver, build_homeserver
from ranvier.app.preflight import EXIT_FILES, EXIT_PORT, StartupError, preflight
from ranvier.config.errors import ConfigError
from ranvier.config.load import load_config
from ranvier.config.schema import HomeserverConfig, ListenerConfig
from ranvier.core.appservice import AppServiceConfigError
from ranvier.storage.migrations import SchemaTooNewError
from ranvier.util.clock import Clock
from ranvier.util.logcontext import RequestIdFilter

logger = logging.getLogger(__name__)

# In-flight requests get this long to finish after SIGTERM before connections are cut.
SHUTDOWN_GRACE_SECONDS = 10.0
# Then TLS peers get this long to answer close_notify before their connection is aborted.
CLOSE_WAIT_SECONDS = 1.0


@dataclass
class RunningServer:
    homeserver: Homeserver
    runners: list[web.AppRunner] = field(default_factory=list)
    # (listener index, host, port) actually bound — port 0 in config picks a free port.
    bound: list[tuple[int, str, int]] = field(default_factory=list)

    def port(self, listener_index: int = 0) -> int:
        for idx, _host, port in self.bound:
            if idx == listener_index:
                return port
        raise KeyError(listener_index)

    async def stop(self) -> None:
        self.homeserver.begin_shutdown()
        for runner in self.runners:
            await close_runner(runner)
        await self.homeserver.stop()


async def close_runner(
    runner: web.BaseRunner, *, close_wait: float = CLOSE_WAIT_SECONDS
) -> None:
    """`runner.cleanup()` (stop listening, let in-flight requests finish), then make
    sure every accepted connection is closed before returning. A TLS connection only
    closes once the peer answers our close_notify (or after asyncio's 30 s shutdown
    timeout): those still open after `close_wait` are aborted. So nothing is left for
    the event loop to finish (or to warn about as an unclosed transport) after
    `stop()`."""
    listeners = [
        site._server  # noqa: SLF001 - the asyncio.Server, as in _site_sockets
        for site in runner.sites
        if isinstance(site._server, asyncio.AbstractServer)  # noqa: SLF001
    ]
    # Registered while the listeners are open: on Python 3.11 `wait_closed()` called
    # after `close()` returns at once instead of waiting for the connections.
    closed = [asyncio.ensure_future(server.wait_closed()) for server in listeners]
    await asyncio.sleep(0)
    http = runner.server
    transports = _connection_transports(http)
    await runner.cleanup()
    if not closed:
        return
    _done, pending = await asyncio.wait(closed, timeout=close_wait)
    if not pending:
        return
    # Handlers forget their transport once closed: use the ones seen before, plus
    # connections whose TLS handshake finished during the shutdown.
    for transport in transports | _connection_transports(http):
        transport.abort()
    _done, pending = await asyncio.wait(pending, timeout=close_wait)
    for waiter in pending:
        waiter.cancel()
    if pending:
        logger.warning("%d listener(s) still had open connections", len(pending))


def _connection_transports(server: web.Server | None) -> set[asyncio.Transport]:
    if server is None:
        return set()
    return {c.transport for c in server.connections if c.transport is not None}


def _ssl_context(listener: ListenerConfig) -> ssl.SSLContext | None:
    if listener.tls is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(
        str(listener.tls.certificate_path), str(listener.tls.private_key_path)
    )
    return ctx


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs every request its parser refuses (a NUL in a header, a bad request
    line) with a full traceback, though the client already got its 400: keep one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and exc.code < 500:
            first_line = (exc.message or "").splitlines()[:1]
            message = record.getMessage()
            record.msg = "%s: %s"
            record.args = (message, " ".join(first_line))
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.exc_info = None
            record.exc_text = None
        return True


def _install_log_filters() -> None:
    server_logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server_logger.filters):
        server_logger.addFilter(MalformedRequestFilter())


async def start_server(
    config: HomeserverConfig, *, clock: Clock | None = None
) -> RunningServer:
    _install_log_filters()
    hs = await build_homeserver(config, clock=clock)
    running = RunningServer(hs)
    try:
        await hs.start()
        for idx, listener in enumerate(config.listeners):
            app = build_http_app(
                hs.endpoints_for(list(listener.resources)),
                authenticator=hs.authenticator,
                limiter=hs.limiter,
                settings=hs.http_settings,
            )
            runner = MatrixAppRunner(
                app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE_SECONDS
            )
            await runner.setup()
            running.runners.append(runner)
            ctx = _ssl_context(listener)
            for host in listener.bind_addresses:
                site = web.TCPSite(runner, host, listener.port, ssl_context=ctx)
                try:
                    await site.start()
                except OSError as exc:
                    # preflight test-bound the port; something took it since.
                    raise StartupError(
                        f"cannot listen on {host}:{listener.port}: {exc.strerror}",
                        EXIT_PORT,
                    ) from None
                for sock in _site_sockets(site):
                    running.bound.append((idx, host, sock))
                logger.info(
                    "listening on %s:%s %s",
                    host,
                    listener.port,
                    list(listener.resources),
                )
    except BaseException:
        await running.stop()
        raise
    return running


def _site_sockets(site: web.TCPSite) -> list[int]:
    server = site._server  # noqa: SLF001 - aiohttp exposes bound ports only here
    if server is None:
        return []
    ports: list[int] = []
    for sock in getattr(server, "sockets", ()):
        ports.append(int(sock.getsockname()[1]))
    return ports


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "request": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


class ReopenableFileHandler(logging.FileHandler):
    """A log file that SIGHUP reopens by name, after logrotate moved the old one."""

    def reopen(self) -> None:
        with self.lock or contextlib.nullcontext():
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()


def configure_logging(level: str, fmt: str, file: Path | None = None) -> None:
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr)
        if file is None
        else ReopenableFileHandler(file, encoding="utf-8")
    )
    handler.addFilter(RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(JsonLogFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def reopen_log_files() -> None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, ReopenableFileHandler):
            handler.reopen()
            logger.info("SIGHUP: reopened log file %s", handler.baseFilename)


def reload_config(config_paths: Sequence[str], current: HomeserverConfig) -> None:
    """SIGHUP: reopen the log file, re-read the config files and apply what can change
    at run time (the log level). A bad file is logged and ignored; the server keeps running either way."""
    reopen_log_files()
    try:
        fresh = load_config(config_paths, os.environ)
    except ConfigError as exc:
        logger.error("SIGHUP: config not reloaded: %s", " ".join(str(exc).split()))
        return
    root = logging.getLogger()
    old_level = logging.getLevelName(root.level)
    if fresh.log.level != old_level:
        root.setLevel(fresh.log.level)
        # Logged at WARNING so that the change is visible whatever the new level.
        logger.warning("SIGHUP: log level %s -> %s", old_level, fresh.log.level)
    else:
        logger.info("SIGHUP: config reloaded, log level unchanged (%s)", old_level)
    logger.debug("SIGHUP: reloaded %s", ", ".join(config_paths))
    ignored = [
        name
        for name in ("rate_limits", "registration")
        if getattr(fresh, name) != getattr(current, name)
    ]
    if ignored:
        logger.warning(
            "SIGHUP: changes to %s take effect only after a restart", ", ".join(ignored)
        )


async def serve_forever(
    config: HomeserverConfig, config_paths: Sequence[str] = ()
) -> None:
    running = await start_server(config)
    # Start-up objects (modules, config, the service graph) live as long as the
    # process: collect start-up garbage once, then freeze the survivors so that no
    # full collection scans them again.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_config, config_paths, config)
    logger.info("Ranvier serving %s", config.server_name)
    await stop.wait()
    logger.info("shutting down: finishing in-flight requests")
    await running.stop()
    logger.info("stopped cleanly")


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop  # optional accelerator; plain asyncio behaves the same
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def run(config: HomeserverConfig, config_paths: Sequence[str] = ()) -> int:
    # Until the loop installs its own handler, SIGHUP must not kill a starting server.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        lock = preflight(config)
    except StartupError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    try:
        configure_logging(config.log.level, config.log.format, config.log.file)
    except OSError as exc:
        lock.release()
        sys.stderr.write(
            f"error: cannot open log file {config.log.file}: {exc.strerror}\n"
        )
        return EXIT_FILES
    try:
        _run_loop(serve_forever(config, config_paths))
    except StartupError as exc:
        logger.error("%s", exc)
        return exc.exit_code
    except SchemaTooNewError as exc:
        # A downgrade: the message says what to do; the traceback adds nothing.
        logger.error("%s", exc)
        return 1
    except AppServiceConfigError as e:
        # An operator mistake in a registration file: the message names the file
        # and the field, a traceback would only hide it.
        logger.error("invalid application service registration: %s", e)
        return 1
    except Exception:
        logger.exception("fatal error")
        return 1
    finally:
        lock.release()
    return 0

"""Build a `HomeserverConfig` from a merged YAML mapping, collecting every problem.

The walker is table-driven: it reads each dataclass field's `Setting` (parser, derived
default, nesting) from `schema.py`, so no per-key code lives here except the few checks
that relate several keys of one section (`_CHECKS`).
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ranvier.config.errors import ConfigProblem
from ranvier.config.schema import (
    DatabaseConfig,
    EmailConfig,
    HomeserverConfig,
    ListenerConfig,
    Setting,
    TurnConfig,
    setting_of,
)
from ranvier.config.values import Context, Invalid, describe, did_you_mean


class _Failed:
    """A value that could not be built; its problem is already recorded."""


_FAILED = _Failed()


def join_key(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build_config(
    raw: object, base_dir: Path
) -> tuple[HomeserverConfig | None, list[ConfigProblem]]:
    """Validate a merged, env-substituted mapping; relative paths resolve in `base_dir`."""
    problems: list[ConfigProblem] = []
    if not isinstance(raw, Mapping):
        got = describe(raw)
        problems.append(ConfigProblem("", f"expected a mapping of settings, got {got}"))
        return None, problems
    built = _Builder(Context(base_dir), problems).section(
        HomeserverConfig, raw, "", None
    )
    if isinstance(built, HomeserverConfig) and not problems:
        return built, problems
    return None, problems


class _Builder:
    def __init__(self, ctx: Context, problems: list[ConfigProblem]) -> None:
        self.ctx = ctx
        self.problems = problems

    def add(self, key: str, message: str) -> None:
        self.problems.append(ConfigProblem(key, message))

    def section(self, cls: type[Any], raw: object, path: str, base: object) -> object:
        """Build dataclass `cls` from `raw`; absent keys fall back to `base`'s values."""
        if not isinstance(raw, Mapping):
            self.add(path, f"expected a mapping, got {describe(raw)}")
            return _FAILED
        fields = dataclasses.fields(cls)
        self._check_keys(raw, [f.name for f in fields], path)
        values: dict[str, object] = {}
        outer = self.ctx.section
        self.ctx.section = values
        if cls is HomeserverConfig:
            self.ctx.root = values
        failed = False
        for fld in fields:
            value = self.field(fld, raw.get(fld.name), path, base)
            if isinstance(value, _Failed):
                failed = True
            else:
                values[fld.name] = value
        self.ctx.section = outer
        check = _CHECKS.get(cls)
        if check is not None:
            for key, message in check(values):
                self.add(join_key(path, key), message)
        return _FAILED if failed else cls(**values)

    def field(self, fld: Any, raw: object, path: str, base: object) -> object:
        meta = setting_of(fld)
        key = join_key(path, fld.name)
        default = getattr(base, fld.name) if base is not None else fld.default
        if meta.section is not None:
            return self._nested(meta, raw, key, default)
        if raw is None:
            return self._default(meta, key, default)
        assert meta.parse is not None
        try:
            return meta.parse(raw, self.ctx)
        except Invalid as exc:
            for issue in exc.issues:
                self.add(key + issue.subpath, issue.render(secret=meta.secret))
            return _FAILED

    def _default(self, meta: Setting, key: str, default: object) -> object:
        if meta.derive is not None:
            return meta.derive(self.ctx)
        if default is not dataclasses.MISSING:
            return default
        example = f", e.g. {meta.example!r}" if meta.example is not None else ""
        kind = meta.parse.kind if meta.parse is not None else "a value"
        self.add(key, f"required: expected a {kind}{example}")
        return _FAILED

    def _nested(self, meta: Setting, raw: object, key: str, default: object) -> object:
        assert meta.section is not None
        if not meta.many:
            if raw is None and default is None:
                return None  # an optional section that is absent
            # An absent section is built from {} so that derived defaults apply.
            base = default if isinstance(default, meta.section) else None
            return self.section(meta.section, {} if raw is None else raw, key, base)
        if raw is None:
            return default
        if not isinstance(raw, list) or not raw:
            self.add(
                key, f"expected a list of at least one mapping, got {describe(raw)}"
            )
            return _FAILED
        items = [
            self.section(meta.section, item, f"{key}[{index}]", None)
            for index, item in enumerate(raw)
        ]
        return _FAILED if any(isinstance(i, _Failed) for i in items) else tuple(items)

    def _check_keys(
        self, raw: Mapping[Any, object], known: list[str], path: str
    ) -> None:
        for key in raw:
            if not isinstance(key, str):
                self.add(path, f"keys must be strings, got {describe(key)}")
            elif key not in known:
                hint = did_you_mean(key, known) or _hint_elsewhere(key, path)
                self.add(
                    join_key(path, key), "unknown key" + (f"; {hint}" if hint else "")
                )


# --- "did you mean" across sections --------------------------------------------------------


def _schema_keys(cls: type[Any], path: str = "") -> Iterator[str]:
    for fld in dataclasses.fields(cls):
        meta = setting_of(fld)
        key = join_key(path, fld.name)
        yield key
        if meta.section is not None:
            yield from _schema_keys(meta.section, f"{key}[0]" if meta.many else key)


def _hint_elsewhere(key: str, path: str) -> str:
    """For a key in the wrong section: where a key of that (or a similar) name lives."""
    by_name: dict[str, list[str]] = {}
    for full in _schema_keys(HomeserverConfig):
        by_name.setdefault(full.rsplit(".", 1)[-1], []).append(full)
    names = difflib.get_close_matches(key, list(by_name), n=1, cutoff=0.75)
    if not names:
        return ""
    places = [p for p in by_name[names[0]] if p != join_key(path, names[0])][:3]
    if not places:
        return ""
    return "did you mean " + " or ".join(repr(p) for p in places) + "?"


# --- checks that relate several keys -------------------------------------------------------

Check = Callable[[Mapping[str, object]], Iterator[tuple[str, str]]]


def _check_root(values: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    listeners = values.get("listeners")
    if not isinstance(listeners, tuple):
        return
    seen: dict[tuple[str, int], int] = {}
    for index, listener in enumerate(listeners):
        assert isinstance(listener, ListenerConfig)
        if listener.port == 0:
            continue  # every port-0 socket gets its own free port
        for address in listener.bind_addresses:
            first = seen.setdefault((address, listener.port), index)
            if first != index:
                yield (
                    f"listeners[{index}].port",
                    f"{address} port {listener.port} is already used by listeners[{first}]",
                )


def _check_database(values: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    engine = values.get("engine")
    if "dsn" not in values:
        return
    if engine == "postgres" and values["dsn"] is None:
        yield "dsn", "required when engine is 'postgres'"
    if engine == "sqlite" and values["dsn"] is not None:
        yield (
            "dsn",
            "only used with engine 'postgres'; remove it or set engine: postgres",
        )


def _together(
    values: Mapping[str, object], first: str, second: str
) -> Iterator[tuple[str, str]]:
    if first not in values or second not in values:
        return
    if values[first] is not None and values[second] is None:
        yield second, f"required when {first} is set"
    if values[first] is None and values[second] is not None:
        yield first, f"required when {second} is set"


def _check_turn(values: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    yield from _together(values, "username", "password")
    if values.get("shared_secret") is not None and values.get("username") is not None:
        yield "shared_secret", "set either shared_secret or username/password, not both"


def _check_email(values: Mapping[str, object]) -> Iterator[tuple[str, str]]:
    yield from _together(values, "smtp_user", "smtp_password")


_CHECKS: dict[type[Any], Check] = {
    HomeserverConfig: _check_root,
    DatabaseConfig: _check_database,
    TurnConfig: _check_turn,
    EmailConfig: _check_email,
}

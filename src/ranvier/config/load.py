"""Load configuration: read YAML layers, merge, substitute environment variables, validate.

    config = load_config(["homeserver.yaml", "secrets.yaml"], os.environ)

- Layers: files merge in order; a later file's mapping merges key by key into the
  earlier one, while its lists and plain values replace the earlier value outright.
- Secrets: any string may contain `${VAR}` or `${VAR:-default}` (default used when VAR is
  unset or empty), filled from `env`. `$$` is a literal `$`. This is the only way the
  environment reaches the config; callers pass `os.environ` (the config layer never reads
  it, which keeps loading deterministic in tests).
- Relative paths resolve against the directory of the first file.
- Every problem in every file is reported at once, in one `ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ranvier.config.errors import ConfigError, ConfigProblem
from ranvier.config.schema import HomeserverConfig
from ranvier.config.validate import build_config, join_key
from ranvier.config.values import describe

_MERGE_TAG = "tag:yaml.org,2002:merge"
_REFERENCE_RE = re.compile(r"\$(?:(\$)|\{([^}]*)\}|(\{))")
_BODY_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


def load_config(
    paths: Sequence[str | Path], env: Mapping[str, str]
) -> HomeserverConfig:
    """Load, merge and validate config files; raises `ConfigError` listing every problem."""
    if not paths:
        raise ConfigError([ConfigProblem("", "no configuration file given")])
    problems: list[ConfigProblem] = []
    merged: dict[str, object] = {}
    for path in paths:
        try:
            merged = merge_layers(merged, read_yaml_file(Path(path)))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return parse_config(merged, base_dir=Path(paths[0]).absolute().parent, env=env)


def parse_config(
    raw: Mapping[str, object], *, base_dir: Path, env: Mapping[str, str]
) -> HomeserverConfig:
    """Validate an already-merged mapping (the part of `load_config` after reading files)."""
    substituted, env_problems = substitute_env(raw, env)
    config, problems = build_config(substituted, base_dir)
    # A value whose ${VAR} failed would also fail validation; report only the cause.
    failed_keys = {p.key for p in env_problems}
    problems = env_problems + [p for p in problems if p.key not in failed_keys]
    if config is None or problems:
        raise ConfigError(problems)
    return config


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last)."""

    def construct_mapping(
        self, node: yaml.MappingNode, deep: bool = False
    ) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            if isinstance(key, Hashable):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml_file(path: Path) -> dict[str, object]:
    """One YAML layer: a mapping (an empty file is an empty mapping)."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(name, f"cannot read: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigProblem(name, "not UTF-8 text")]) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        where = ""
        if exc.problem_mark is not None:
            mark = exc.problem_mark
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        raise ConfigError(
            [ConfigProblem(name, f"invalid YAML{where}: {exc.problem}")]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(name, f"invalid YAML: {exc}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        got = describe(data)
        raise ConfigError(
            [ConfigProblem(name, f"expected a mapping of settings, got {got}")]
        )
    return data


def merge_layers(
    base: Mapping[Any, object], overlay: Mapping[Any, object]
) -> dict[Any, object]:
    """`overlay` on top of `base`: mappings merge recursively; anything else replaces."""
    merged = dict(base)
    for key, value in overlay.items():
        old = merged.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            merged[key] = merge_layers(old, value)
        else:
            merged[key] = value
    return merged


def substitute_env(
    value: object, env: Mapping[str, str], path: str = ""
) -> tuple[Any, list[ConfigProblem]]:
    """Replace `${VAR}` / `${VAR:-default}` in every string inside `value`."""
    problems: list[ConfigProblem] = []
    if isinstance(value, Mapping):
        out: dict[object, object] = {}
        for key, item in value.items():
            out[key], sub = substitute_env(item, env, join_key(path, str(key)))
            problems.extend(sub)
        return out, problems
    if isinstance(value, list):
        items: list[object] = []
        for index, item in enumerate(value):
            new, sub = substitute_env(item, env, f"{path}[{index}]")
            items.append(new)
            problems.extend(sub)
        return items, problems
    if isinstance(value, str) and "$" in value:
        return _substitute_string(value, env, path, problems), problems
    return value, problems


def _substitute_string(
    text: str, env: Mapping[str, str], path: str, problems: list[ConfigProblem]
) -> str:
    def replace(match: re.Match[str]) -> str:
        if match[1] is not None:
            return "$"
        if match[3] is not None:
            problems.append(
                ConfigProblem(path, "unterminated '${' (write '$$' for a '$')")
            )
            return match[0]
        body = _BODY_RE.fullmatch(match[2])
        if body is None:
            problems.append(
                ConfigProblem(
                    path, f"malformed reference {match[0]!r}: expected ${{NAME}}"
                )
            )
            return match[0]
        name, default = body[1], body[2]
        found = env.get(name, "")
        if found or (name in env and default is None):
            return found
        if default is not None:
            return default
        problems.append(
            ConfigProblem(
                path,
                f"environment variable {name} is not set "
                f"(write ${{{name}:-default}} to give a default)",
            )
        )
        return match[0]

    return _REFERENCE_RE.sub(replace, text)

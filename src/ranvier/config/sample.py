"""Generate the commented sample config and the Markdown configuration reference.

Both walk the schema tables in `schema.py`, so every key is documented by construction:
each key gets its doc comment and its default; keys that are unset by default appear
commented out with an example value.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ranvier.config.schema import (
    DatabaseConfig,
    EmailConfig,
    HomeserverConfig,
    ListenerConfig,
    MediaConfig,
    RegistrationConfig,
    Setting,
    setting_of,
)
from ranvier.config.values import split_server_name

_WIDTH = 88

HEADER = """\
Ranvier homeserver configuration.

Every key except server_name is optional: a key that is absent, or commented out like
the "#key: value" lines below, takes the default shown above it.

- Layering: `ranvier run --config homeserver.yaml --config secrets.yaml` merges files in
  order. Mappings merge key by key; lists and plain values from a later file replace
  earlier ones.
- Secrets: any string may contain ${VAR} or ${VAR:-default}, filled from the environment
  (the default applies when VAR is unset or empty). Write $$ for a literal $.
- Relative paths are relative to the directory of the first config file.
- Sizes: bytes, or 512K, 50M, 1G (powers of 1024). Durations: seconds, or 30m, 1h, 7d.
"""

_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def sample_config(
    server_name: str,
    data_dir: str | Path,
    port: int = 8008,
    *,
    public_baseurl: str | None = None,
    bind_addresses: Sequence[str] = ("127.0.0.1",),
) -> HomeserverConfig:
    """The config `generate_config` writes, as an object (`ranvier init` defaults)."""
    data = Path(data_dir)
    host = split_server_name(server_name)[0]
    local = host in _LOCAL_HOSTS or host.endswith(".localhost")
    if public_baseurl is None:
        # A local name has no certificate and no proxy yet: point clients straight at the
        # listener. Port 0 (tests) is picked at start-up, so it cannot appear in the URL.
        authority = f"{host}:{port}" if port else host
        public_baseurl = f"http://{authority}/" if local else f"https://{server_name}/"
    return HomeserverConfig(
        server_name=server_name,
        public_baseurl=public_baseurl,
        data_dir=data,
        signing_key_path=data / "signing.key",
        listeners=(ListenerConfig(port=port, bind_addresses=tuple(bind_addresses)),),
        database=DatabaseConfig(path=data / "homeserver.db"),
        media=MediaConfig(store_path=data / "media"),
        email=EmailConfig(notif_from=f"Ranvier <noreply@{host}>"),
        # A localhost server listens on loopback only, so open sign-up is safe there and
        # lets a newcomer register from Element right after `make run`. Public names keep
        # the closed default: open registration attracts spam accounts.
        registration=(
            RegistrationConfig(enabled=True, require_token=False)
            if local
            else RegistrationConfig()
        ),
    )


def generate_config(
    server_name: str,
    data_dir: str | Path,
    port: int = 8008,
    *,
    public_baseurl: str | None = None,
    bind_addresses: Sequence[str] = ("127.0.0.1",),
) -> str:
    """A commented homeserver.yaml that loads back to `sample_config(...)`.

    `server_name` must be valid (ValueError otherwise). For a local name (localhost)
    public_baseurl is `http://localhost:<port>/`; otherwise `https://<server_name>/`.
    """
    config = sample_config(
        server_name,
        data_dir,
        port,
        public_baseurl=public_baseurl,
        bind_addresses=bind_addresses,
    )
    return render_config(config)


def render_config(config: HomeserverConfig, header: str = HEADER) -> str:
    """Any config as commented YAML that `load_config` reads back to an equal config."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _render_fields(config, None, 0, lines)
    return "\n".join(lines) + "\n"


# --- rendering -----------------------------------------------------------------------------


def _render_fields(obj: Any, base: object, indent: int, out: list[str]) -> None:
    """The keys of section `obj`; `base` holds the section's defaults (or None)."""
    for fld in dataclasses.fields(obj):
        meta = setting_of(fld)
        default = getattr(base, fld.name) if base is not None else fld.default
        if out and out[-1] and not out[-1].endswith(":"):
            out.append("")
        doc = meta.doc
        if meta.section is None:
            doc = _with_default(meta, default)
        _comment(doc, indent, out)
        _render_value(fld.name, meta, getattr(obj, fld.name), default, indent, out)


def _render_value(
    key: str, meta: Setting, value: object, default: object, indent: int, out: list[str]
) -> None:
    pad = " " * indent
    if meta.section is None:
        if value is None:
            out.extend(_commented(_leaf(key, meta.example, 0), indent))
        elif meta.comment_default and value == default:
            out.extend(_commented(_leaf(key, _to_raw(value, meta), 0), indent))
        else:
            out.extend(_leaf(key, _to_raw(value, meta), indent))
    elif meta.many:
        assert isinstance(value, tuple)
        out.append(f"{pad}{key}:")
        for item in value:
            item_lines: list[str] = []
            _render_fields(item, None, indent + 4, item_lines)
            out.extend(_as_list_item(item_lines, indent + 2))
    elif value is None:
        block = [f"{key}:"]
        _render_examples(meta.section, 2, block)
        out.extend(_commented(block, indent))
    else:
        out.append(f"{pad}{key}:")
        _render_fields(value, default, indent + 2, out)


def _render_examples(cls: type[Any], indent: int, out: list[str]) -> None:
    """An unset optional section: every key with its example value."""
    for fld in dataclasses.fields(cls):
        meta = setting_of(fld)
        _comment(_with_default(meta, fld.default), indent, out)
        raw = meta.example if meta.example is not None else _to_raw(fld.default, meta)
        out.extend(_leaf(fld.name, raw, indent))


def _as_list_item(lines: list[str], dash_indent: int) -> list[str]:
    """Turn a mapping rendered at dash_indent + 2 into a YAML list item."""
    for index, line in enumerate(lines):
        if line and not line.lstrip().startswith("#"):
            lines[index] = " " * dash_indent + "- " + line[dash_indent + 2 :]
            break
    return lines


def _commented(lines: list[str], indent: int) -> list[str]:
    """Comment out YAML lines so that deleting the first '#' restores them."""
    pad = " " * indent
    return [
        pad + line if line.lstrip().startswith("#") else f"{pad}#{line}"
        for line in lines
    ]


def _comment(text: str, indent: int, out: list[str]) -> None:
    prefix = " " * indent + "# "
    out.extend(
        textwrap.wrap(text, _WIDTH, initial_indent=prefix, subsequent_indent=prefix)
    )


def _leaf(key: str, raw: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(raw, list) and raw:
        flow = _flow(raw)
        if len(raw) > 3 or len(pad) + len(key) + len(flow) > _WIDTH - 2:
            return [f"{pad}{key}:", *(f"{pad}  - {_flow(item)}" for item in raw)]
    return [f"{pad}{key}: {_flow(raw)}"]


def _flow(raw: object) -> str:
    text = yaml.safe_dump(
        raw, default_flow_style=True, width=10_000, allow_unicode=True
    )
    text = text.rstrip("\n")
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text


def _to_raw(value: object, meta: Setting | None = None) -> object:
    """A typed value back as the plain YAML value its parser accepts."""
    if meta is not None and meta.dump is not None:
        return meta.dump(value)
    if isinstance(value, Path | ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, tuple | list):
        return [_to_raw(item) for item in value]
    return value


def _with_default(meta: Setting, default: object) -> str:
    if default is dataclasses.MISSING:
        return f"{meta.doc} Required."
    return f"{meta.doc} Default: {_default_text(meta, default)}."


def _default_text(meta: Setting, default: object, *, markdown: bool = False) -> str:
    if meta.default_doc is not None:
        return _md(meta.default_doc) if markdown else meta.default_doc
    if default is dataclasses.MISSING:
        return "required"
    if default is None:
        return "unset"
    text = _flow(_to_raw(default, meta))
    return "`" + text.replace("|", "\\|") + "`" if markdown else text


def _md(text: str) -> str:
    """Plain text for a Markdown table cell: `<name>` would vanish as an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


# --- Markdown reference --------------------------------------------------------------------


def reference_markdown() -> str:
    """A Markdown table of every key: dotted path, type, default and meaning."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    _reference_rows(HomeserverConfig, None, "", rows)
    return "\n".join(rows) + "\n"


def _reference_rows(cls: type[Any], base: object, path: str, rows: list[str]) -> None:
    for fld in dataclasses.fields(cls):
        meta = setting_of(fld)
        key = f"{path}.{fld.name}" if path else fld.name
        default = getattr(base, fld.name) if base is not None else fld.default
        if meta.section is None:
            assert meta.parse is not None
            kind = meta.parse.kind
            shown = _default_text(meta, default, markdown=True)
        else:
            kind = "list of mappings" if meta.many else "mapping"
            shown = "unset" if default is None else "see below"
        cells = [f"`{key}`", _md(kind), shown, _md(meta.doc)]
        rows.append("| " + " | ".join(cells) + " |")
        if meta.section is not None:
            nested_base = default if isinstance(default, meta.section) else None
            nested_path = f"{key}[]" if meta.many else key
            _reference_rows(meta.section, nested_base, nested_path, rows)

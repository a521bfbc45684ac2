"""CPU time and resident memory of a server process tree, read from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

_CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
_PROC: Final = Path("/proc")


def _read_stat(pid: int) -> list[str] | None:
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return raw[raw.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _read_stat(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of ``root``, its live descendants and reaped children.

    Fields after the command name: state(0) ppid(1) … utime(11) stime(12)
    cutime(13) cstime(14). ``cutime``/``cstime`` count children already waited for.
    """
    ticks = 0
    for pid in descendants(root):
        fields = _read_stat(pid)
        if fields is None:
            continue
        ticks += int(fields[11]) + int(fields[12])
        if pid == root:
            ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK


def rss_bytes(root: int) -> int:
    """Sum of VmRSS over ``root`` and its live descendants."""
    total = 0
    for pid in descendants(root):
        try:
            status = (_PROC / str(pid) / "status").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
                break
    return total


def self_cpu_seconds() -> float:
    """CPU seconds used so far by this (the load-generating) process."""
    times = os.times()
    return times.user + times.system

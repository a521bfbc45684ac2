"""The real server in-process: versions, keys, well-known, health, spec errors."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from ranvier.core.crypto.keys import decode_verify_key_base64
from ranvier.core.crypto.signing import verify_json_signature
from tests.helpers.homeserver import running_homeserver


async def test_versions_keys_wellknown_health(tmp_path: Path) -> None:
    async with running_homeserver(tmp_path) as hs, aiohttp.ClientSession() as s:
        async with s.get(hs.base_url + "/_matrix/client/versions") as r:
            assert r.status == 200
            body = await r.json()
            assert body["versions"]
            assert all(v.startswith(("v1.", "r0.")) for v in body["versions"])

        async with s.get(hs.base_url + "/_matrix/key/v2/server") as r:
            assert r.status == 200
            keys = await r.json()
        assert keys["server_name"] == "localhost"
        assert keys["valid_until_ts"] > 0
        ((key_id, key),) = keys["verify_keys"].items()
        assert key_id.startswith("ed25519:")
        verify_key = decode_verify_key_base64(key_id, key["key"])
        verify_json_signature(keys, "localhost", key_id, verify_key)
        # Tampering with the document breaks the signature.
        keys["valid_until_ts"] += 1
        with pytest.raises(Exception):  # noqa: B017, PT011 - any signature error
            verify_json_signature(keys, "localhost", key_id, verify_key)

        async with s.get(hs.base_url + "/.well-known/matrix/client") as r:
            assert (await r.json())["m.homeserver"]["base_url"].startswith("http")
        async with s.get(hs.base_url + "/health") as r:
            assert r.status == 200
            assert await r.text() == "OK"
        async with s.get(hs.base_url + "/_matrix/client/v3/definitely/not/here") as r:
            assert r.status == 404
            assert (await r.json())["errcode"] == "M_UNRECOGNIZED"
        async with s.delete(hs.base_url + "/_matrix/client/versions") as r:
            assert r.status == 405
            assert (await r.json())["errcode"] == "M_UNRECOGNIZED"

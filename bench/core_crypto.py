"""Throughput of the protocol core's hot paths: canonical JSON, hashes, signing,
verification, event IDs and local event finalisation.

Run: .venv/bin/python bench/core_crypto.py [--seconds 0.5]

Prints ops/s and CPU µs/op per operation, on a typical v12 m.room.message PDU (~0.8 KB of
canonical JSON, three auth events, one prev event). The `canonicaljson` package is
timed as a reference point for the canonical encoding.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import canonicaljson

from ranvier.core.crypto.base64 import decode_base64
from ranvier.core.crypto.hashes import check_content_hash, compute_content_hash
from ranvier.core.crypto.keys import SigningKey, VerifyKey
from ranvier.core.crypto.signing import sign_json, signing_bytes, verify_json_signature
from ranvier.core.events.builder import finalize_local_event
from ranvier.core.events.format import event_from_pdu, validate_pdu
from ranvier.core.events.ids import compute_event_id
from ranvier.core.events.redaction import redact_pdu
from ranvier.core.events.signatures import verify_event_signatures
from ranvier.core.json import decode_json, encode_canonical_json
from ranvier.core.room_versions import KNOWN_ROOM_VERSIONS

ROOM_VERSION = KNOWN_ROOM_VERSIONS["12"]
SEED = decode_base64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
KEY = SigningKey.from_seed(SEED, "a_bench")


def typical_unsigned_pdu() -> dict[str, Any]:
    return {
        "type": "m.room.message",
        "room_id": "!jZyx5FzOVRH0lONuNtLjSmhlLskYvpMJwCdMBKmPVTg",
        "sender": "@alice:example.org",
        "origin_server_ts": 1_700_000_000_000,
        "depth": 1234,
        "content": {
            "msgtype": "m.text",
            "body": "Hello there! This is a fairly typical chat message of moderate size.",
            "format": "org.matrix.custom.html",
            "formatted_body": "<p>Hello there! This is a <b>fairly typical</b> chat message.</p>",
            "m.mentions": {"user_ids": ["@bob:example.org"]},
        },
        "prev_events": ["$Xq4BvZ9mYw8kL2nP0sT6uR1eD5fG7hJ3kA9bC4dE2fG"],
        "auth_events": [
            "$jZyx5FzOVRH0lONuNtLjSmhlLskYvpMJwCdMBKmPVTg",
            "$Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3Ab4C",
            "$Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2Rr1Qq0Pp9Oo8Nn7Mm6L",
        ],
        "unsigned": {"age_ts": 1_700_000_000_000},
    }


def bench(name: str, fn: Callable[[], object], seconds: float) -> None:
    """Best of three runs, after a warm-up. Measures this process's CPU time rather than
    wall time, so that other load on a shared machine does not inflate the result."""
    for _ in range(200):
        fn()
    best = float("inf")
    for _ in range(3):
        n = 0
        cpu_start = time.process_time()
        deadline = time.perf_counter() + seconds / 3
        while True:
            for _ in range(50):
                fn()
            n += 50
            if time.perf_counter() >= deadline:
                break
        best = min(best, (time.process_time() - cpu_start) / n)
    print(f"{name:<48} {1 / best:>12,.0f} ops/s {best * 1e6:>9.2f} µs/op (CPU)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.5, help="time per benchmark")
    args = parser.parse_args()
    s = args.seconds

    rv = ROOM_VERSION
    unsigned = typical_unsigned_pdu()
    event = finalize_local_event(unsigned, rv, "example.org", KEY)
    pdu = event.data
    redacted = redact_pdu(pdu, rv)
    message = signing_bytes(redacted)
    signature = KEY.sign(message)
    signed_obj = sign_json(
        {"server_name": "example.org", "verify_keys": {}}, "example.org", KEY
    )
    wire = encode_canonical_json(pdu)
    keys: dict[tuple[str, str], VerifyKey] = {
        ("example.org", KEY.key_id): KEY.verify_key
    }

    def lookup(server: str, key_id: str, ts: int) -> VerifyKey | None:
        return keys.get((server, key_id))

    print(f"typical PDU: {len(wire)} bytes canonical JSON, room v{rv.identifier}")
    print(f"redacted signing bytes: {len(message)} bytes\n")
    bench("canonical JSON encode (strict, ours)", lambda: encode_canonical_json(pdu), s)
    bench(
        "canonical JSON encode (canonicaljson pkg)",
        lambda: canonicaljson.encode_canonical_json(pdu),
        s,
    )
    bench("decode_json (wire bytes)", lambda: decode_json(wire), s)
    bench("redact_pdu", lambda: redact_pdu(pdu, rv), s)
    bench("compute_content_hash", lambda: compute_content_hash(pdu, rv), s)
    bench("check_content_hash", lambda: check_content_hash(pdu, rv), s)
    bench("ed25519 sign (redacted bytes)", lambda: KEY.sign(message), s)
    bench(
        "ed25519 verify (redacted bytes)",
        lambda: KEY.verify_key.verify(message, signature),
        s,
    )
    bench(
        "sign_json (small key object)",
        lambda: sign_json({"server_name": "example.org"}, "example.org", KEY),
        s,
    )
    bench(
        "verify_json_signature (small key object)",
        lambda: verify_json_signature(
            signed_obj, "example.org", KEY.key_id, KEY.verify_key
        ),
        s,
    )
    bench("compute_event_id", lambda: compute_event_id(pdu, rv), s)
    bench("validate_pdu", lambda: validate_pdu(pdu, rv), s)
    bench("event_from_pdu (validate + event ID)", lambda: event_from_pdu(pdu, rv), s)
    bench("verify_event_signatures", lambda: verify_event_signatures(event, lookup), s)
    bench(
        "finalize_local_event (hash+sign+ID+validate)",
        lambda: finalize_local_event(unsigned, rv, "example.org", KEY),
        s,
    )


if __name__ == "__main__":
    main()

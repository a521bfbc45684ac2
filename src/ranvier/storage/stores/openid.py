"""OpenID tokens (schema 0014): hashed at rest, each with its expiry."""

from __future__ import annotations

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn


class OpenIdStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_openid_token(
        self, token_hash: str, user_id: str, expires_ts: int, now_ms: int
    ) -> None:
        """Store a new token and drop the expired ones (bounded by the expiry index)."""
        await self._db.run_txn(
            "add_openid_token",
            _add_openid_token_txn,
            token_hash,
            user_id,
            expires_ts,
            now_ms,
        )

    async def get_openid_token_user(self, token_hash: str, now_ms: int) -> str | None:
        """The token's user, if it exists and has not expired."""
        return await self._db.run_read_txn(
            "get_openid_token_user", _get_openid_token_user_txn, token_hash, now_ms
        )


def _add_openid_token_txn(
    txn: Txn, token_hash: str, user_id: str, expires_ts: int, now_ms: int
) -> None:
    txn.execute("DELETE FROM openid_tokens WHERE expires_ts <= ?", (now_ms,))
    txn.execute(
        "INSERT INTO openid_tokens (token_hash, user_id, expires_ts) VALUES (?, ?, ?)",
        (token_hash, user_id, expires_ts),
    )


def _get_openid_token_user_txn(txn: Txn, token_hash: str, now_ms: int) -> str | None:
    txn.execute(
        "SELECT user_id FROM openid_tokens WHERE token_hash = ? AND expires_ts > ?",
        (token_hash, now_ms),
    )
    row = txn.fetchone()
    return None if row is None else str(row[0])

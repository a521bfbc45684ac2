"""Inbound transactions.

    PUT /_matrix/federation/v1/send/{txnId}

Spec: S-S API > Transactions. The body is parsed and answered by
`TransactionHandler`; this module only moves JSON.
"""

from __future__ import annotations

from typing import Any

from ranvier.api.http import AuthMode, Endpoint, MatrixRequest
from ranvier.services.federation.inbound import TransactionHandler

__all__ = ["TransactionResource"]


class TransactionResource:
    def __init__(self, handler: TransactionHandler) -> None:
        self._handler = handler

    async def put_send(self, req: MatrixRequest) -> dict[str, Any]:
        body = await req.json_any()
        return await self._handler.on_send_transaction(
            req.origin, req.path_param("txnId"), body
        )

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint(
                "PUT",
                ("/_matrix/federation/v1/send/{txnId}",),
                self.put_send,
                auth=AuthMode.SERVER,
            )
        ]

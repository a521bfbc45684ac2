"""Content reports (schema 0012): what clients reported, for moderators to read."""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.storage.database import Database
from ranvier.storage.txn import Txn


@dataclass(frozen=True, slots=True)
class Report:
    report_id: str
    reporter: str
    received_ts: int
    room_id: str | None = None
    event_id: str | None = None
    reported_user_id: str | None = None
    reason: str | None = None
    score: int | None = None


_COLUMNS = (
    "report_id, reporter, received_ts, room_id, event_id, reported_user_id,"
    " reason, score"
)


class ReportStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_report(self, report: Report) -> None:
        await self._db.run_txn("add_report", _add_report_txn, report)

    async def get_reports(self, limit: int = 100) -> list[Report]:
        """The newest reports first."""
        return await self._db.run_read_txn("get_reports", _get_reports_txn, limit)


def _add_report_txn(txn: Txn, r: Report) -> None:
    txn.execute(
        f"INSERT INTO reports ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            r.report_id,
            r.reporter,
            r.received_ts,
            r.room_id,
            r.event_id,
            r.reported_user_id,
            r.reason,
            r.score,
        ),
    )


def _get_reports_txn(txn: Txn, limit: int) -> list[Report]:
    txn.execute(
        f"SELECT {_COLUMNS} FROM reports ORDER BY received_ts DESC, report_id LIMIT ?",
        (limit,),
    )
    return [
        Report(
            report_id=str(row[0]),
            reporter=str(row[1]),
            received_ts=int(row[2]),
            room_id=row[3],
            event_id=row[4],
            reported_user_id=row[5],
            reason=row[6],
            score=None if row[7] is None else int(row[7]),
        )
        for row in txn.fetchall()
    ]

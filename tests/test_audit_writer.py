"""The service's batched audit writer: order, timestamps of the action, isolation of a bad entry, no loss at
close, and a store outage counted rather than raised."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from serving.audit import AuditWriter
from stores.audit_log import AuditDraft, AuditLog
from tests.conftest_stores import BASE_TIME

pytest_plugins = ("tests.conftest_stores",)


def test_record_many_writes_all_in_order_or_none(engine: Engine) -> None:
    audit = AuditLog(engine)
    drafts = [AuditDraft(BASE_TIME + timedelta(seconds=i), f"key-{i}", "scored", "listing", "3", {"records": i})
              for i in range(5)]
    assert audit.record_many(drafts) == 5
    entries = audit.query(newest_first=False)
    assert [(e.actor, e.detail["records"], e.at) for e in entries] == [
        (f"key-{i}", i, BASE_TIME + timedelta(seconds=i)) for i in range(5)]
    with pytest.raises(ValueError, match="detail"):
        audit.record_many([drafts[0], AuditDraft(BASE_TIME, "k", "scored", "listing", None, {"bad": math.nan})])
    assert len(audit.query()) == 5


def test_writer_batches_keeps_order_and_isolates_a_bad_entry(engine: Engine) -> None:
    audit = AuditLog(engine)
    writer = AuditWriter(audit, max_per_write=7)
    writer.start()
    for i in range(40):
        detail = {"bad": math.nan} if i == 13 else {"i": i}
        writer.submit(AuditDraft(BASE_TIME + timedelta(milliseconds=i), "key", "scored", "listing", None, detail))
    writer.close()
    stored = [e.detail["i"] for e in audit.query(newest_first=False, limit=100)]
    assert stored == [i for i in range(40) if i != 13]
    assert (writer.stats().written, writer.stats().dropped) == (39, 1)


def test_writer_counts_a_store_outage_and_goes_on(engine: Engine) -> None:
    class DownAudit(AuditLog):
        def record_many(self, drafts):  # type: ignore[no-untyped-def]
            raise ConnectionError("database is down")

    writer = AuditWriter(DownAudit(engine))
    writer.start()
    for i in range(3):
        writer.submit(AuditDraft(BASE_TIME, "key", "scored", "listing", None, {"i": i}))
    writer.close()
    assert (writer.stats().written, writer.stats().dropped) == (0, 3)

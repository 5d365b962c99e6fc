"""Schemathesis hooks for the contract run (tests/test_contract_e2e.py; `SCHEMATHESIS_HOOKS=tests.schemathesis_hooks`).

One rule of the contract cannot be written in JSON Schema: a decision's `decided_at` may not be more than five
minutes in the future (stores/decisions.py; docs/api.md says so). Generated decisions with a future
`decided_at` are moved into the past so that schema-valid data stays valid; everything else is generated as
the schema says. The rule itself is tested in tests/test_hostile_input_e2e.py (`decided_at` in the year 3000).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import schemathesis

PAST = "2000-01-01T00:00:00Z"


def _in_the_future(text: object) -> bool:
    if not isinstance(text, str):
        return False
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return False
    return moment.tzinfo is not None and moment > datetime.now(UTC)


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    operation = getattr(context, "operation", None)
    if operation is None or operation.path != "/feedback" or not isinstance(body, dict):
        return body
    decision = body.get("decision")
    if isinstance(decision, dict) and _in_the_future(decision.get("decided_at")):
        return {**body, "decision": {**decision, "decided_at": PAST}}
    return body

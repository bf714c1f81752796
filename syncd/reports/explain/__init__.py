"""`syncd explain`: everything syncd knows about one person, to answer "why is this person (not) an agent?".

`explain_person` reads for one person what a cycle reads for everyone: the user in Graph, the path from each
configured (and each excluded) group down through nested groups to the user, the result of `graph.filter`
with the clause that failed, each phone source's value and verdict, the consistency GUID; our record and
audit log; the agent SmartCommunicator holds now (and who holds the number when that is someone else). Then
it asks `syncd.core.reconcile.plan`, with a one-person desired state, what the next cycle would do. A
section that cannot be read (Graph or SmartCommunicator failing) says what failed and the others are still
filled in; `Explanation.errors` lists the failures.

The decisions are pure functions, tested with tables in tests/unit/test_explain.py: `shortest_paths` over a
group adjacency map, `phone_verdicts` per phone source, `classify_query` for the argument, `next_cycle` for
the plan and its wording. `render_text` and `Explanation.to_json` only format.

The package, by seam: `model` (the sections of an explanation, its JSON form, the errors), `verdicts` (the
pure decisions), `gathering` (the reading: Graph, SmartCommunicator and the store) and `rendering` (the text).
Only `gathering` does I/O; the others are checked pure by the import contracts in pyproject.toml.
"""

from syncd.reports.explain.gathering import (
    MAX_GROUPS_VISITED,
    OPERATIONS_SEARCHED,
    SHOWN_OPERATIONS,
    SUCCESS,
    explain_person,
)
from syncd.reports.explain.model import (
    AmbiguousPerson,
    Consistency,
    Explanation,
    Filter,
    GroupRef,
    Membership,
    NextAction,
    NextCycle,
    OperationLike,
    PersonNotFound,
    Phone,
    QueryKind,
    QueryNotUnderstood,
    RecordSection,
    Remote,
    SourceVerdict,
    Who,
)
from syncd.reports.explain.rendering import render_text
from syncd.reports.explain.verdicts import (
    MAX_PATHS,
    classify_query,
    consistency_of,
    next_cycle,
    phone_verdicts,
    shortest_paths,
    teams_notes,
)

__all__ = [
    "MAX_GROUPS_VISITED",
    "MAX_PATHS",
    "OPERATIONS_SEARCHED",
    "SHOWN_OPERATIONS",
    "SUCCESS",
    "AmbiguousPerson",
    "Consistency",
    "Explanation",
    "Filter",
    "GroupRef",
    "Membership",
    "NextAction",
    "NextCycle",
    "OperationLike",
    "PersonNotFound",
    "Phone",
    "QueryKind",
    "QueryNotUnderstood",
    "RecordSection",
    "Remote",
    "SourceVerdict",
    "Who",
    "classify_query",
    "consistency_of",
    "explain_person",
    "next_cycle",
    "phone_verdicts",
    "render_text",
    "shortest_paths",
    "teams_notes",
]

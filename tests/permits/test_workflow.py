"""The transition table: every edge outside it is refused, in Python and in the database."""

from __future__ import annotations

import itertools
import uuid

import psycopg
import pytest

from permits import workflow
from permits.errors import InvalidTransition
from permits.models import PermitState as S
from tests.permits import factories as f

ALL = list(itertools.product(S, S))
ILLEGAL = [(a, b) for a, b in ALL if b not in workflow.TRANSITIONS[a]]


def test_workflow_issue_path_is_in_table() -> None:
    """draft → submitted → in review → approved → active ⇄ suspended → completed → closed."""
    path = [
        S.DRAFT,
        S.SUBMITTED,
        S.IN_REVIEW,
        S.APPROVED,
        S.ACTIVE,
        S.SUSPENDED,
        S.ACTIVE,
        S.COMPLETED,
        S.CLOSED,
    ]
    assert all(workflow.allowed(a, b) for a, b in itertools.pairwise(path))


@pytest.mark.parametrize(("a", "b"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_workflow_illegal_edge_raises_invalid_transition(a: S, b: S) -> None:
    """Each pair of states outside the table is an InvalidTransition naming both states."""
    pid = uuid.uuid4()
    with pytest.raises(InvalidTransition) as exc:
        workflow.check(pid, a, b)
    assert (exc.value.permit_id, exc.value.from_state, exc.value.to_state) == (str(pid), a, b)


def test_workflow_terminal_states_have_no_exit() -> None:
    """Closed and cancelled are final."""
    assert workflow.TRANSITIONS[S.CLOSED] == frozenset()
    assert workflow.TRANSITIONS[S.CANCELLED] == frozenset()


def test_workflow_table_equals_database_table(database_url: str) -> None:
    """The migration installs exactly the Python table."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT from_state, to_state FROM permit_transitions").fetchall()
    assert sorted(rows) == workflow.edges()


def test_database_refuses_every_illegal_state_change(seeded_url: str) -> None:
    """The trigger refuses each illegal edge even from raw SQL."""
    pid = uuid.uuid4()
    with psycopg.connect(seeded_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO permits (permit_id, number, site_id, type, state, template_version,"
            " title, applicant, watcher, lat, lon, location_text, risks, measures,"
            " planned_start, planned_end, created_at) VALUES (%s, 'X-1', %s, 'MB', 'draft', 'v',"
            " 't', 'app', 'wat', 0, 0, 'x', '{}', '{}', now(), now() + interval '1 hour', now())",
            (pid, f.SITE),
        )
        refused = 0
        for a, b in ILLEGAL:
            if a == b:
                continue
            with conn.transaction():
                # Put the row in state a bypassing the trigger (superuser), then try a → b.
                conn.execute("SET LOCAL session_replication_role = replica")
                conn.execute(
                    "UPDATE permits SET state = %s, submitted_at = now(), approved_at = now(),"
                    " activated_at = now(), completed_at = now(), ended_at = now(),"
                    " closed_at = CASE WHEN %s = 'closed' THEN now() END,"
                    " suspended_at = CASE WHEN %s = 'suspended' THEN now() END,"
                    " suspend_reason = CASE WHEN %s = 'suspended' THEN 'pause' END"
                    " WHERE permit_id = %s",
                    (a, a, a, a, pid),
                )
                conn.execute("SET LOCAL session_replication_role = origin")
                with (
                    pytest.raises(psycopg.errors.CheckViolation, match="invalid permit"),
                    conn.transaction(),
                ):
                    conn.execute("UPDATE permits SET state = %s WHERE permit_id = %s", (b, pid))
                refused += 1
    assert refused == len([1 for a, b in ILLEGAL if a != b])


def test_database_new_permit_must_start_as_draft(seeded_url: str) -> None:
    """A permit cannot be born approved."""
    with psycopg.connect(seeded_url) as conn, pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "INSERT INTO permits (permit_id, number, site_id, type, state, template_version,"
            " title, applicant, watcher, lat, lon, location_text, risks, measures,"
            " planned_start, planned_end, created_at, submitted_at, approved_at) VALUES"
            " (gen_random_uuid(), 'X-2', %s, 'MB', 'approved', 'v', 't', 'app', 'wat', 0, 0,"
            " 'x', '{}', '{}', now(), now() + interval '1 hour', now(), now(), now())",
            (f.SITE,),
        )

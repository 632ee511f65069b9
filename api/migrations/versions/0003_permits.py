"""Permits (GB 30871-2022): users and roles, permits, workers, certificates, approvals, gas
tests, check-ins, evidence, events, violations and the hash-chained audit trail.

Constraints carry the rules the database can hold by itself: the transition table (a trigger
refuses any other state change), levels per type, the standard's validity caps, content
frozen after submission (4.18), one signature per user per route round (separation of
duties), an append-only audit trail and permits kept at least one year (B.3).

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = (
    "draft",
    "submitted",
    "in_review",
    "approved",
    "active",
    "suspended",
    "completed",
    "closed",
    "cancelled",
    "expired",
    "terminated",
)
# The transition table of permits/workflow.py (a test checks that both agree).
EDGES = (
    ("draft", "submitted"),
    ("draft", "cancelled"),
    ("submitted", "in_review"),
    ("submitted", "approved"),
    ("submitted", "draft"),
    ("submitted", "cancelled"),
    ("in_review", "approved"),
    ("in_review", "draft"),
    ("in_review", "cancelled"),
    ("approved", "active"),
    ("approved", "cancelled"),
    ("approved", "expired"),
    ("approved", "terminated"),
    ("active", "suspended"),
    ("active", "completed"),
    ("active", "expired"),
    ("active", "terminated"),
    ("suspended", "active"),
    ("suspended", "expired"),
    ("suspended", "terminated"),
    ("completed", "closed"),
    ("expired", "closed"),
    ("terminated", "closed"),
)
CONTENT_COLUMNS = (
    "site_id",
    "type",
    "level",
    "level_facts",
    "template_version",
    "title",
    "applicant",
    "watcher",
    "lat",
    "lon",
    "location_text",
    "fields",
    "activities",
    "risks",
    "measures",
    "planned_start",
    "planned_end",
    "host_permit_id",
    "coordinator",
)


def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def upgrade() -> None:
    states = _in(STATES)
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in CONTENT_COLUMNS)
    op.execute(
        f"""
        CREATE TABLE permit_users (
            user_id    text PRIMARY KEY CHECK (user_id ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{{0,63}}$'),
            name       text NOT NULL,
            roles      text[] NOT NULL DEFAULT '{{}}',
            site_id    text REFERENCES sites,
            worker_id  text REFERENCES workers,
            active     boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE permit_transitions (
            from_state text NOT NULL CHECK (from_state IN ({states})),
            to_state   text NOT NULL CHECK (to_state IN ({states})),
            PRIMARY KEY (from_state, to_state)
        );
        INSERT INTO permit_transitions VALUES {", ".join(f"('{a}', '{b}')" for a, b in EDGES)};

        CREATE SEQUENCE permit_number_seq;
        CREATE TABLE permits (
            permit_id        uuid PRIMARY KEY,
            number           text NOT NULL UNIQUE,
            site_id          text NOT NULL REFERENCES sites,
            type             text NOT NULL
                             CHECK (type IN ('DH','SX','MB','GC','DZ','YD','DT','DL')),
            level            text,
            level_facts      jsonb NOT NULL DEFAULT '[]',
            state            text NOT NULL DEFAULT 'draft' CHECK (state IN ({states})),
            template_version text NOT NULL,
            title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
            applicant        text NOT NULL REFERENCES permit_users,
            watcher          text NOT NULL REFERENCES permit_users,
            lat              double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
            lon              double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
            location_text    text NOT NULL,
            fields           jsonb NOT NULL DEFAULT '{{}}',
            activities       text[] NOT NULL DEFAULT '{{}}',
            risks            text[] NOT NULL,
            measures         text[] NOT NULL,
            planned_start    timestamptz NOT NULL,
            planned_end      timestamptz NOT NULL,
            host_permit_id   uuid REFERENCES permits,
            coordinator      text REFERENCES permit_users,
            round            integer NOT NULL DEFAULT 1 CHECK (round >= 1),
            version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
            created_at       timestamptz NOT NULL,
            submitted_at     timestamptz,
            approved_at      timestamptz,
            activated_at     timestamptz,
            suspended_at     timestamptz,
            suspend_reason   text CHECK (suspend_reason IN ('pause','watcher_away','gas_alarm',
                                         'danger','violation','weather','other')),
            completed_at     timestamptz,
            closed_at        timestamptz,
            ended_at         timestamptz,
            end_reason       text,
            due_soon_flagged_at    timestamptz,
            gas_overdue_flagged_at timestamptz,
            CONSTRAINT permits_window CHECK (planned_end > planned_start),
            CONSTRAINT permits_level_by_type CHECK (
                (type = 'DH' AND level IN ('special','1','2'))
                OR (type = 'GC' AND level IN ('I','II','III','IV'))
                OR (type = 'DZ' AND level IN ('1','2','3'))
                OR (type IN ('SX','MB','YD','DT','DL') AND level IS NULL)),
            -- GB 30871 5.1.5, 6.10, 8.2.11, 10.8: the standard's caps (company caps in code)
            CONSTRAINT permits_validity_cap CHECK (planned_end - planned_start <= CASE type
                WHEN 'DH' THEN CASE WHEN level = '2' THEN interval '72 hours'
                                    ELSE interval '8 hours' END
                WHEN 'SX' THEN interval '24 hours'
                WHEN 'GC' THEN interval '7 days'
                WHEN 'YD' THEN CASE WHEN coalesce(fields->>'special_case_reason', '') <> ''
                                    THEN interval '30 days' ELSE interval '15 days' END
                ELSE interval '100 years' END),
            CONSTRAINT permits_watcher_not_applicant CHECK (watcher <> applicant),
            CONSTRAINT permits_host_only_for_yd CHECK (type = 'YD' OR host_permit_id IS NULL),
            CONSTRAINT permits_yd_has_host CHECK (type <> 'YD' OR host_permit_id IS NOT NULL),
            CONSTRAINT permits_submitted CHECK (
                state IN ('draft','cancelled') OR submitted_at IS NOT NULL),
            CONSTRAINT permits_approved CHECK (
                state NOT IN ('approved','active','suspended','completed')
                OR approved_at IS NOT NULL),
            CONSTRAINT permits_activated CHECK (
                state NOT IN ('active','suspended','completed') OR activated_at IS NOT NULL),
            CONSTRAINT permits_suspended CHECK (
                (state = 'suspended') = (suspended_at IS NOT NULL AND suspend_reason IS NOT NULL)),
            CONSTRAINT permits_completed CHECK (state <> 'completed' OR completed_at IS NOT NULL),
            CONSTRAINT permits_closed CHECK ((state = 'closed') = (closed_at IS NOT NULL)),
            CONSTRAINT permits_ended CHECK (
                state NOT IN ('cancelled','expired','terminated') OR ended_at IS NOT NULL)
        );
        CREATE INDEX permits_site_state_idx ON permits (site_id, state);
        CREATE INDEX permits_type_level_idx ON permits (type, level);
        CREATE INDEX permits_start_idx ON permits (planned_start);
        CREATE INDEX permits_live_end_idx ON permits (planned_end)
            WHERE state IN ('approved','active','suspended');

        CREATE FUNCTION pp_permits_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.state <> 'draft' THEN
                    RAISE EXCEPTION 'a permit starts as draft, not %', NEW.state
                        USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            END IF;
            IF TG_OP = 'DELETE' THEN
                IF OLD.created_at > now() - interval '1 year' THEN
                    RAISE EXCEPTION 'permits are kept at least one year (GB 30871 B.3)'
                        USING ERRCODE = 'integrity_constraint_violation';
                END IF;
                RETURN OLD;
            END IF;
            IF NEW.state IS DISTINCT FROM OLD.state AND NOT EXISTS (
                SELECT 1 FROM permit_transitions
                 WHERE from_state = OLD.state AND to_state = NEW.state) THEN
                RAISE EXCEPTION 'invalid permit transition % -> %', OLD.state, NEW.state
                    USING ERRCODE = 'check_violation';
            END IF;
            IF OLD.state <> 'draft' AND ({changed}) THEN
                RAISE EXCEPTION 'permit % content is locked after submission (GB 30871 4.18)',
                    OLD.number USING ERRCODE = 'check_violation';
            END IF;
            RETURN NEW;
        END
        $fn$;
        CREATE TRIGGER permits_guard BEFORE INSERT OR UPDATE OR DELETE ON permits
            FOR EACH ROW EXECUTE FUNCTION pp_permits_guard();

        CREATE TABLE permit_workers (
            permit_id uuid NOT NULL REFERENCES permits,
            worker_id text NOT NULL REFERENCES workers,
            trade     text,
            PRIMARY KEY (permit_id, worker_id)
        );
        CREATE INDEX permit_workers_worker_idx ON permit_workers (worker_id);
        CREATE FUNCTION pp_permit_workers_guard() RETURNS trigger LANGUAGE plpgsql AS $fn$
        DECLARE
            st text;
        BEGIN
            SELECT state INTO st FROM permits
             WHERE permit_id = coalesce(NEW.permit_id, OLD.permit_id);
            IF st IS DISTINCT FROM 'draft' THEN
                RAISE EXCEPTION 'the workers of a submitted permit are locked (GB 30871 4.18)'
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN coalesce(NEW, OLD);
        END
        $fn$;
        CREATE TRIGGER permit_workers_guard BEFORE INSERT OR UPDATE OR DELETE ON permit_workers
            FOR EACH ROW EXECUTE FUNCTION pp_permit_workers_guard();

        CREATE TABLE certificates (
            cert_id     bigserial PRIMARY KEY,
            worker_id   text NOT NULL REFERENCES workers,
            trade       text NOT NULL,
            number      text NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
            issuer      text NOT NULL,
            valid_until date NOT NULL,
            review_due  date,
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (trade, number)
        );
        CREATE INDEX certificates_worker_idx ON certificates (worker_id, trade);

        CREATE TABLE permit_approvals (
            approval_id bigserial PRIMARY KEY,
            permit_id   uuid NOT NULL REFERENCES permits,
            round       integer NOT NULL CHECK (round >= 1),
            step        integer NOT NULL CHECK (step >= 1),
            role        text NOT NULL,
            kind        text NOT NULL CHECK (kind IN ('countersign','review','approve')),
            decision    text NOT NULL CHECK (decision IN ('approved','rejected')),
            user_id     text NOT NULL REFERENCES permit_users,
            signed_at   timestamptz NOT NULL,
            lat         double precision NOT NULL,
            lon         double precision NOT NULL,
            distance_m  double precision NOT NULL CHECK (distance_m >= 0),
            comment     text NOT NULL DEFAULT '',
            -- separation of duties: one signature per user per route round
            UNIQUE (permit_id, round, user_id),
            UNIQUE (permit_id, round, step)
        );

        CREATE TABLE certificate_checks (
            check_id    bigserial PRIMARY KEY,
            permit_id   uuid NOT NULL REFERENCES permits,
            approval_id bigint REFERENCES permit_approvals,
            phase       text NOT NULL CHECK (phase IN ('approval','activation','resume')),
            worker_id   text NOT NULL REFERENCES workers,
            trade       text NOT NULL,
            number      text,
            outcome     text NOT NULL CHECK (outcome IN ('valid','invalid','unverifiable')),
            reason      text NOT NULL,
            source      text NOT NULL,
            details     jsonb NOT NULL DEFAULT '{{}}',
            checked_at  timestamptz NOT NULL
        );
        CREATE INDEX certificate_checks_permit_idx ON certificate_checks (permit_id);

        CREATE TABLE gas_tests (
            test_id     bigserial PRIMARY KEY,
            permit_id   uuid NOT NULL REFERENCES permits,
            taken_at    timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL,
            point       text NOT NULL CHECK (length(point) >= 1),
            lat         double precision,
            lon         double precision,
            analyst     text NOT NULL REFERENCES permit_users,
            o2_pct      double precision CHECK (o2_pct BETWEEN 0 AND 100),
            readings    jsonb NOT NULL DEFAULT '[]',
            passed      boolean NOT NULL,
            failures    jsonb NOT NULL DEFAULT '[]',
            CHECK (taken_at <= recorded_at),
            CHECK (passed = (failures = '[]'::jsonb))
        );
        CREATE INDEX gas_tests_permit_idx ON gas_tests (permit_id, taken_at DESC);

        CREATE TABLE checkins (
            checkin_id      bigserial PRIMARY KEY,
            permit_id       uuid NOT NULL REFERENCES permits,
            user_id         text NOT NULL REFERENCES permit_users,
            at              timestamptz NOT NULL,
            lat             double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
            lon             double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
            accuracy_m      double precision CHECK (accuracy_m >= 0),
            distance_m      double precision NOT NULL CHECK (distance_m >= 0),
            within          boolean NOT NULL,
            override_by     text REFERENCES permit_users,
            override_reason text,
            override_at     timestamptz,
            CHECK ((override_by IS NULL) = (override_reason IS NULL)),
            CHECK ((override_by IS NULL) = (override_at IS NULL)),
            CHECK (override_by IS NULL OR (override_by <> user_id AND NOT within))
        );
        CREATE INDEX checkins_permit_idx ON checkins (permit_id, at DESC);

        CREATE TABLE evidence (
            evidence_id  bigserial PRIMARY KEY,
            permit_id    uuid NOT NULL REFERENCES permits,
            step         text NOT NULL,
            sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{{64}}$'),
            content_type text NOT NULL
                         CHECK (content_type IN ('image/jpeg','image/png','application/pdf')),
            size         integer NOT NULL CHECK (size > 0),
            uploaded_by  text NOT NULL REFERENCES permit_users,
            uploaded_at  timestamptz NOT NULL,
            taken_at     timestamptz,
            lat          double precision,
            lon          double precision,
            place_source text NOT NULL CHECK (place_source IN ('upload','exif','none')),
            CHECK ((lat IS NULL) = (lon IS NULL)),
            CHECK ((place_source = 'none') = (lat IS NULL)),
            UNIQUE (permit_id, step, sha256)
        );

        CREATE TABLE permit_events (
            event_id   bigserial PRIMARY KEY,
            permit_id  uuid NOT NULL REFERENCES permits,
            at         timestamptz NOT NULL,
            kind       text NOT NULL,
            from_state text,
            to_state   text,
            actor      text NOT NULL,
            reason     text,
            data       jsonb NOT NULL DEFAULT '{{}}'
        );
        CREATE INDEX permit_events_permit_idx ON permit_events (permit_id, at);
        CREATE INDEX permit_events_kind_idx ON permit_events (kind, at);
        -- The rule engine listens on this channel (and reads the table to catch up).
        CREATE FUNCTION pp_permit_events_notify() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            PERFORM pg_notify('pp_permit_events', json_build_object(
                'event_id', NEW.event_id, 'permit_id', NEW.permit_id, 'kind', NEW.kind,
                'to_state', NEW.to_state)::text);
            RETURN NEW;
        END
        $fn$;
        CREATE TRIGGER permit_events_notify AFTER INSERT ON permit_events
            FOR EACH ROW EXECUTE FUNCTION pp_permit_events_notify();

        CREATE TABLE permit_violations (
            violation_id bigserial PRIMARY KEY,
            permit_id    uuid NOT NULL REFERENCES permits,
            at           timestamptz NOT NULL,
            rule         text NOT NULL,
            clause       text NOT NULL,
            user_id      text REFERENCES permit_users,
            worker_id    text REFERENCES workers,
            detail       jsonb NOT NULL DEFAULT '{{}}',
            CHECK (user_id IS NOT NULL OR worker_id IS NOT NULL)
        );
        CREATE INDEX permit_violations_at_idx ON permit_violations (at);

        CREATE TABLE audit_log (
            seq       bigint PRIMARY KEY CHECK (seq > 0),
            at        timestamptz NOT NULL,
            actor     text NOT NULL,
            action    text NOT NULL,
            permit_id uuid,
            body      text NOT NULL,
            prev_hash text NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{{64}}$'),
            hash      text NOT NULL UNIQUE CHECK (hash ~ '^[0-9a-f]{{64}}$')
        );
        CREATE INDEX audit_log_permit_idx ON audit_log (permit_id, seq);
        CREATE INDEX audit_log_at_idx ON audit_log (at);
        CREATE FUNCTION pp_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            RAISE EXCEPTION 'the audit trail is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $fn$;
        CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION pp_audit_append_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION pp_audit_append_only();
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS audit_log, permit_violations, permit_events, evidence, checkins,
            gas_tests, certificate_checks, permit_approvals, certificates, permit_workers,
            permits, permit_transitions, permit_users CASCADE;
        DROP SEQUENCE IF EXISTS permit_number_seq;
        DROP FUNCTION IF EXISTS pp_audit_append_only(), pp_permit_events_notify(),
            pp_permit_workers_guard(), pp_permits_guard();
        """
    )

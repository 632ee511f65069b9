"""Enforcement: rule decisions, device commands and their lifecycle.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE decisions (
            decision_id bigserial PRIMARY KEY,
            ts          timestamptz NOT NULL,
            rule_id     text NOT NULL,
            reason      text NOT NULL,
            permit_id   uuid REFERENCES permits,
            worker_id   text,
            device_ids  text[] NOT NULL DEFAULT '{}',
            actions     jsonb NOT NULL,
            facts       jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX decisions_permit_idx ON decisions (permit_id, ts);
        CREATE INDEX decisions_ts_idx ON decisions USING brin (ts);

        CREATE TABLE device_commands (
            cmd_id       uuid PRIMARY KEY,
            device_id    text NOT NULL REFERENCES devices,
            action       text NOT NULL
                         CHECK (action IN ('rest', 'resume', 'evacuate', 'stop_work', 'message')),
            params       jsonb NOT NULL DEFAULT '{}',
            decision_id  bigint REFERENCES decisions,
            state        text NOT NULL DEFAULT 'queued'
                         CHECK (state IN ('queued', 'sent', 'delivered', 'done', 'failed',
                                          'timed_out', 'expired')),
            attempts     integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            created_at   timestamptz NOT NULL DEFAULT now(),
            next_try_at  timestamptz NOT NULL DEFAULT now(),
            deadline_at  timestamptz NOT NULL,
            expires_at   timestamptz NOT NULL,
            sent_at      timestamptz,
            delivered_at timestamptz,
            finished_at  timestamptz,
            detail       text,
            CHECK (deadline_at <= expires_at),
            CHECK (state <> 'delivered' OR delivered_at IS NOT NULL),
            CHECK (state NOT IN ('done', 'failed', 'timed_out', 'expired')
                   OR finished_at IS NOT NULL)
        );
        CREATE INDEX device_commands_open_idx ON device_commands (next_try_at)
            WHERE state IN ('queued', 'sent');
        CREATE INDEX device_commands_device_idx ON device_commands (device_id, created_at);

        -- Every state a command passes through, in order (the lifecycle is explainable).
        CREATE TABLE device_command_events (
            cmd_id  uuid NOT NULL REFERENCES device_commands,
            at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            state   text NOT NULL,
            detail  text
        );
        CREATE INDEX device_command_events_idx ON device_command_events (cmd_id, at);
        CREATE FUNCTION pp_command_event() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state
               OR NEW.attempts IS DISTINCT FROM OLD.attempts THEN
                INSERT INTO device_command_events (cmd_id, state, detail)
                VALUES (NEW.cmd_id, NEW.state, NEW.detail);
            END IF;
            RETURN NEW;
        END
        $fn$;
        CREATE TRIGGER device_commands_events AFTER INSERT OR UPDATE ON device_commands
            FOR EACH ROW EXECUTE FUNCTION pp_command_event();

        -- A notification to people: sent to the first roles at once, escalated along the
        -- chain while nobody acknowledges it before its deadline.
        CREATE TABLE push_groups (
            group_id     uuid PRIMARY KEY,
            decision_id  bigint REFERENCES decisions,
            site_id      text NOT NULL,
            permit_id    uuid REFERENCES permits,
            kind         text NOT NULL,
            message      text NOT NULL,
            payload      jsonb NOT NULL DEFAULT '{}',
            chain        text[] NOT NULL CHECK (cardinality(chain) >= 1),
            level        integer NOT NULL DEFAULT 0 CHECK (level >= 0),
            deadline_s   double precision NOT NULL CHECK (deadline_s > 0),
            state        text NOT NULL DEFAULT 'open'
                         CHECK (state IN ('open', 'acked', 'exhausted')),
            deadline_at  timestamptz NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            acked_at     timestamptz,
            acked_by     text,
            CHECK ((state = 'acked') = (acked_at IS NOT NULL AND acked_by IS NOT NULL)),
            CHECK (level < cardinality(chain))
        );
        CREATE INDEX push_groups_open_idx ON push_groups (deadline_at) WHERE state = 'open';
        CREATE TABLE pushes (
            push_id      uuid PRIMARY KEY,
            group_id     uuid NOT NULL REFERENCES push_groups,
            user_id      text NOT NULL,
            role         text NOT NULL,
            level        integer NOT NULL CHECK (level >= 0),
            state        text NOT NULL DEFAULT 'sent'
                         CHECK (state IN ('sent', 'seen', 'acked', 'escalated')),
            created_at   timestamptz NOT NULL DEFAULT now(),
            seen_at      timestamptz,
            acked_at     timestamptz,
            escalated_at timestamptz,
            CHECK ((state = 'acked') = (acked_at IS NOT NULL)),
            UNIQUE (group_id, user_id)
        );
        CREATE INDEX pushes_user_open_idx ON pushes (user_id) WHERE state IN ('sent', 'seen');

        -- Alarms as the control room works them: one open alarm per (subject, kind);
        -- active/cleared × acknowledged; resolved by a person with a reason.
        CREATE TABLE alarms (
            alarm_id     bigserial PRIMARY KEY,
            subject      text NOT NULL,
            device_id    text NOT NULL,
            worker_id    text,
            kind         text NOT NULL,
            severity     text NOT NULL CHECK (severity IN ('notice', 'warning', 'critical')),
            peak         text NOT NULL CHECK (peak IN ('notice', 'warning', 'critical')),
            state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'cleared')),
            value        double precision,
            raised_at    timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL,
            cleared_at   timestamptz,
            acked_at     timestamptz,
            acked_by     text,
            resolved_at  timestamptz,
            resolved_by  text,
            resolution   text,
            CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
            CHECK ((acked_at IS NULL) = (acked_by IS NULL)),
            CHECK ((resolved_at IS NULL) = (resolved_by IS NULL)
                   AND (resolved_at IS NULL) = (resolution IS NULL))
        );
        CREATE UNIQUE INDEX alarms_one_open ON alarms (subject, kind) WHERE state = 'active';
        CREATE INDEX alarms_recent_idx ON alarms (raised_at DESC);
        CREATE TABLE alarm_events (
            event_id bigserial PRIMARY KEY,
            alarm_id bigint NOT NULL REFERENCES alarms,
            at       timestamptz NOT NULL,
            event    text NOT NULL CHECK (event IN ('raised', 'escalated', 'cleared',
                                                'acknowledged', 'resolved')),
            severity text,
            value    double precision,
            by_user  text,
            note     text
        );
        CREATE INDEX alarm_events_idx ON alarm_events (alarm_id, event_id);

        -- An evacuation of a permit's area: complete only when everyone is accounted for
        -- (outside the area by GPS, or confirmed by the watcher's head count).
        CREATE TABLE evacuations (
            evacuation_id uuid PRIMARY KEY,
            permit_id     uuid REFERENCES permits,
            decision_id   bigint REFERENCES decisions,
            site_id       text NOT NULL,
            lat           double precision NOT NULL,
            lon           double precision NOT NULL,
            radius_m      double precision NOT NULL CHECK (radius_m > 0),
            reason        text NOT NULL,
            state         text NOT NULL DEFAULT 'in_progress'
                          CHECK (state IN ('in_progress', 'complete')),
            started_at    timestamptz NOT NULL DEFAULT now(),
            completed_at  timestamptz,
            CHECK ((state = 'complete') = (completed_at IS NOT NULL))
        );
        CREATE UNIQUE INDEX evacuations_one_open ON evacuations (permit_id)
            WHERE state = 'in_progress';
        CREATE TABLE evacuation_people (
            evacuation_id uuid NOT NULL REFERENCES evacuations,
            device_id     text NOT NULL,
            worker_id     text,
            cmd_id        uuid REFERENCES device_commands,
            acked_at      timestamptz,
            outside_at    timestamptz,
            confirmed_at  timestamptz,
            confirmed_by  text,
            PRIMARY KEY (evacuation_id, device_id),
            CHECK ((confirmed_at IS NULL) = (confirmed_by IS NULL))
        );

        -- A worker sent to rest (downgrade) is unfit until the return-to-work condition holds.
        CREATE TABLE worker_fitness (
            worker_id    text PRIMARY KEY,
            fit          boolean NOT NULL,
            reason       text,
            since        timestamptz NOT NULL DEFAULT now(),
            decision_id  bigint REFERENCES decisions,
            recover_min  double precision CHECK (recover_min > 0),
            CHECK (fit OR reason IS NOT NULL)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE IF EXISTS evacuation_people, evacuations CASCADE;
        DROP TABLE IF EXISTS worker_fitness, alarm_events, alarms CASCADE;
        DROP TABLE IF EXISTS pushes, push_groups CASCADE;
        DROP TABLE IF EXISTS device_command_events, device_commands, decisions CASCADE;
        DROP FUNCTION IF EXISTS pp_command_event();
        """
    )

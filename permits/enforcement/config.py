"""Configuration of enforcement: rules file, device-command delivery and push escalation."""

from pathlib import Path

from pydantic import BaseModel, Field, model_validator


class EnforcementSettings(BaseModel):
    """How decisions are carried out. Delivery timings are company policy (SPEC §5)."""

    rules_file: Path | None = Field(
        default=None, description="A site's rules file; unset: the shipped default rule set."
    )
    command_retry_s: float = Field(
        default=5.0,
        gt=0,
        description="Resend a command not acknowledged within this (QoS 1 retry).",
    )
    command_max_attempts: int = Field(
        default=3, ge=1, description="Sends before an unacknowledged command times out."
    )
    command_deadline_s: float = Field(
        default=30.0, gt=0, description="A command not acknowledged by then has timed out."
    )
    command_expiry_s: float = Field(
        default=300.0, gt=0, description="A command still unsent after this is stale: expired."
    )
    dispatch_tick_s: float = Field(
        default=0.2, gt=0, description="How often due retries and deadlines are checked."
    )
    work_area_radius_m: float = Field(
        default=50.0,
        gt=0,
        description="Radius of a permit's work area around its work point when the permit names "
        "none (company policy; the same 50 m as the check-in rule, SPEC §6).",
    )
    tick_s: float = Field(
        default=1.0, gt=0, description="Offline / no-motion checks, evacuation tracking, recovery."
    )
    refresh_s: float = Field(
        default=30.0, gt=0, description="Re-read permits, devices and fitness at least this often."
    )
    snapshot_s: float = Field(
        default=60.0, gt=0, description="Save the detectors' state this often (restart-safe)."
    )
    catchup_s: float = Field(
        default=300.0,
        ge=0,
        description="After a restart, stored samples from this long before the detector "
        "snapshot on that the detectors have not seen are fed to them before live data.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "EnforcementSettings":
        if self.command_deadline_s > self.command_expiry_s:
            raise ValueError("command_deadline_s must not exceed command_expiry_s")
        return self

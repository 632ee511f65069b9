"""Configuration of authentication: token signing, lifetimes, password hashing, login limits."""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator

MIN_SECRET_CHARS = 32
#: Secrets that appear in docs, examples and habits; never accepted outside demo mode.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "secret",
        "permitpulse",
        "password",
        "demo",
        "test",
        "dev",
        "replace-me",
        "replace-me-with-48-random-bytes-from-secrets-token-urlsafe",
    }
)
SECRET_HINT = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"


def is_weak_secret(value: str) -> bool:
    """True for an empty, short or well-known signing secret."""
    stripped = value.strip()
    return (
        len(stripped) < MIN_SECRET_CHARS
        or stripped.lower() in KNOWN_DEFAULT_SECRETS
        or len(set(stripped)) < 8
    )


class AuthSettings(BaseModel):
    """Users, roles and tokens of the HTTP API and WebSockets (SPEC.md §7)."""

    secret: SecretStr | None = Field(
        default=None,
        description="HMAC key signing access and refresh tokens (HS256), at least 32 characters; "
        f"{SECRET_HINT}. Outside demo mode an unset, short or well-known secret refuses to "
        "start; in demo mode unset means a random key per start.",
    )
    demo: bool = Field(
        default=False,
        description="Demo mode: seed one demo user per role and print their credentials at start; "
        "an unset secret is allowed. `permitpulse demo` turns it on.",
    )
    issuer: str = Field(default="permitpulse", description="`iss` claim of issued tokens.")
    access_token_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="Lifetime of an access token; roles and sites are re-read from the database "
        "at the latest this long after a change (company policy).",
    )
    refresh_token_hours: int = Field(
        default=12,
        ge=1,
        le=24 * 31,
        description="Lifetime of a refresh token: one shift plus margin (company policy). "
        "Logout and a password change revoke every refresh token of the user.",
    )
    login_failures_per_minute: int = Field(
        default=5,
        ge=1,
        description="Failed logins allowed per user name and client address in any minute; more "
        "get HTTP 429 (a guessing attacker elsewhere cannot lock the control room out).",
    )
    login_attempts_per_ip_minute: int = Field(
        default=30, ge=1, description="Login attempts allowed per client address in any minute."
    )
    min_password_chars: int = Field(
        default=12, ge=8, le=128, description="Shortest password a person may choose."
    )
    argon2_time_cost: int = Field(
        default=3, ge=1, description="argon2id passes (RFC 9106 second recommended option)."
    )
    argon2_memory_kib: int = Field(
        default=65_536, ge=8, description="argon2id memory per hash, KiB (RFC 9106: 64 MiB)."
    )
    argon2_parallelism: int = Field(default=4, ge=1, description="argon2id lanes.")
    hash_concurrency: int = Field(
        default=2,
        ge=1,
        description="Password hashes computed at once; bounds the memory a login flood can take.",
    )

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> Self:
        if self.argon2_memory_kib < 8 * self.argon2_parallelism:
            raise ValueError("argon2_memory_kib must be at least 8 × argon2_parallelism")
        if self.demo or self.secret is None:
            return self
        if is_weak_secret(self.secret.get_secret_value()):
            raise ValueError(
                "PP_AUTH_SECRET is empty, shorter than "
                f"{MIN_SECRET_CHARS} characters or a well-known default; {SECRET_HINT} "
                "(or run in demo mode)"
            )
        return self

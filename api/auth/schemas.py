"""Pydantic models of the authentication and user endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.auth.models import USERNAME_RE, Principal, Role, UserRecord

SITE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SiteId = Annotated[str, StringConstraints(pattern=SITE_PATTERN)]
#: Printable text: no control characters (PostgreSQL text cannot even hold NUL).
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]
#: Passwords may be any text but NUL (argon2 takes bytes; NUL truncates in C clients).
Password = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00]+$")]
Username = Annotated[
    str,
    Field(pattern=USERNAME_RE.pattern, description="Login name: lower case, 2-64 characters."),
]


class TokenRead(BaseModel):
    """Reply of the token endpoint (RFC 6749 §5.1)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds the refresh token is valid.")


class PrincipalRead(BaseModel):
    """Who the caller is, as the access token says."""

    username: str
    roles: list[Role]
    sites: list[str] | None = Field(description="Sites the user may see; null = every site.")
    worker_id: str | None
    expires_at: dt.datetime | None

    @classmethod
    def of(cls, p: Principal) -> PrincipalRead:
        return cls(
            username=p.username,
            roles=sorted(p.roles),
            sites=p.site_filter(),
            worker_id=p.worker_id,
            expires_at=p.expires_at,
        )


class UserRead(BaseModel):
    """A user as an administrator sees it (never the password hash)."""

    username: str
    display_name: str
    roles: list[Role]
    sites: list[str]
    all_sites: bool
    worker_id: str | None
    disabled: bool
    created_at: dt.datetime
    last_login_at: dt.datetime | None

    @classmethod
    def of(cls, u: UserRecord) -> UserRead:
        return cls(
            username=u.username,
            display_name=u.display_name,
            roles=sorted(u.roles),
            sites=sorted(u.sites),
            all_sites=u.all_sites,
            worker_id=u.worker_id,
            disabled=u.disabled,
            created_at=u.created_at,
            last_login_at=u.last_login_at,
        )


class UserCreate(BaseModel):
    """A new user."""

    username: Username
    display_name: Name
    password: Password
    roles: list[Role] = Field(min_length=1, max_length=len(Role))
    sites: list[SiteId] = Field(
        default_factory=list, max_length=1000, description="Sites the user may see."
    )
    all_sites: bool = Field(default=False, description="The user may see every site.")
    worker_id: SiteId | None = Field(default=None, description="The worker record, if any.")


class UserUpdate(BaseModel):
    """Changes to a user; absent fields stay as they are. A new password revokes the user's
    refresh tokens; so does disabling."""

    display_name: Name | None = None
    password: Password | None = None
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=len(Role))
    sites: list[SiteId] | None = Field(default=None, max_length=1000)
    all_sites: bool | None = None
    disabled: bool | None = None


class PasswordChange(BaseModel):
    """A user changing their own password."""

    old_password: Password
    new_password: Password

"""Roles, the authenticated principal of a request, and the stored user."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from api.errors import PermissionDeniedError, SiteForbiddenError

USERNAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")


class Role(StrEnum):
    """What a person does on the plant (SPEC.md §1, §7). Roles are not ranked: ``admin``
    manages users and the system and is granted nothing else implicitly, so that separation
    of duties (GB 30871 approval routes) cannot be bypassed by an administrator account."""

    WORKER = "worker"
    WATCHER = "watcher"
    SUPERVISOR = "supervisor"
    APPROVER = "approver"
    SAFETY = "safety"
    CONTROL_ROOM = "control_room"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, from a verified access token.

    Attributes:
        username: the user's login name (use it wherever an acting user is recorded).
        roles: the user's roles.
        sites: the sites the user may see, or None for every site.
        worker_id: the worker record this user is, if any (a worker's own device).
        expires_at: when the token stops being valid (a WebSocket hub closes then).
    """

    username: str
    roles: frozenset[Role]
    sites: frozenset[str] | None
    worker_id: str | None = None
    expires_at: dt.datetime | None = None

    def has_any(self, roles: Iterable[Role]) -> bool:
        return not self.roles.isdisjoint(roles)

    def require_any(self, roles: Iterable[Role]) -> None:
        """Raise `PermissionDeniedError` unless the principal has one of ``roles``."""
        wanted = frozenset(roles)
        if self.roles.isdisjoint(wanted):
            raise PermissionDeniedError(self.username, wanted)

    def can_access_site(self, site_id: str) -> bool:
        return self.sites is None or site_id in self.sites

    def check_site(self, site_id: str) -> None:
        """Raise `SiteForbiddenError` unless the principal may see ``site_id``."""
        if not self.can_access_site(site_id):
            raise SiteForbiddenError(self.username, site_id)

    def site_filter(self) -> list[str] | None:
        """For SQL ``WHERE %s::text[] IS NULL OR site_id = ANY(%s)``: None means every site."""
        return None if self.sites is None else sorted(self.sites)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user (the ``users`` and ``user_sites`` rows)."""

    username: str
    display_name: str
    password_hash: str
    roles: frozenset[Role]
    sites: frozenset[str]
    all_sites: bool
    worker_id: str | None
    disabled: bool
    token_version: int
    created_at: dt.datetime
    last_login_at: dt.datetime | None = None

    def principal(self, expires_at: dt.datetime | None = None) -> Principal:
        return Principal(
            username=self.username,
            roles=self.roles,
            sites=None if self.all_sites else self.sites,
            worker_id=self.worker_id,
            expires_at=expires_at,
        )

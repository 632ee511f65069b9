"""Use cases of users and tokens: log in, refresh, log out, manage users (one transaction each)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from api.auth import repository
from api.auth.models import Principal, UserRecord
from api.auth.passwords import Passwords
from api.auth.schemas import UserCreate, UserUpdate
from api.auth.tokens import IssuedToken, TokenService
from api.errors import InvalidCredentialsError, NotFoundError, SiteForbiddenError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access: IssuedToken
    refresh: IssuedToken


class AuthService:
    """Logins and user management over the ``users`` tables."""

    def __init__(
        self, *, pool: AsyncConnectionPool, tokens: TokenService, passwords: Passwords
    ) -> None:
        self._pool = pool
        self._tokens = tokens
        self._passwords = passwords

    # ------------------------------------------------------------------ sessions

    async def login(self, username: str, password: str) -> TokenPair:
        """Tokens for a valid user name and password; `InvalidCredentialsError` otherwise."""
        name = username.strip().lower()
        async with self._pool.connection() as conn:
            user = await repository.get(conn, name)
        ok = await self._passwords.averify(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            log.info("login refused", extra={"username": name})
            raise InvalidCredentialsError()
        async with self._pool.connection() as conn:
            await repository.record_login(conn, user.username)
            if self._passwords.needs_rehash(user.password_hash):
                await repository.rehash(conn, user.username, await self._passwords.ahash(password))
        log.info("login", extra={"username": user.username})
        return self._pair(user)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """New tokens for a refresh token that is valid, not revoked, of an enabled user."""
        claims = self._tokens.refresh_claims(refresh_token)
        async with self._pool.connection() as conn:
            user = await repository.get(conn, claims.username)
        if user is None or user.disabled or user.token_version != claims.token_version:
            raise InvalidCredentialsError()
        return self._pair(user)

    async def logout(self, principal: Principal) -> None:
        """Revoke every refresh token of the caller (access tokens run out by themselves)."""
        async with self._pool.connection() as conn:
            await repository.revoke_tokens(conn, principal.username)

    async def change_password(self, principal: Principal, old: str, new: str) -> None:
        async with self._pool.connection() as conn:
            user = await repository.get(conn, principal.username)
        if user is None or not await self._passwords.averify(user.password_hash, old):
            raise InvalidCredentialsError()
        self._passwords.check_policy(new, username=user.username)
        new_hash = await self._passwords.ahash(new)
        async with self._pool.connection() as conn:
            await repository.set_password(conn, user.username, new_hash)

    def _pair(self, user: UserRecord) -> TokenPair:
        return TokenPair(
            access=self._tokens.access_token(user.principal()),
            refresh=self._tokens.refresh_token(user),
        )

    # ------------------------------------------------------------------ users

    async def get_user(self, admin: Principal, username: str) -> UserRecord:
        async with self._pool.connection() as conn:
            user = await repository.get(conn, username)
        if user is None or not _manages(admin, user):
            raise NotFoundError("user", username)
        return user

    async def list_users(self, admin: Principal) -> list[UserRecord]:
        async with self._pool.connection() as conn:
            users = await repository.list_all(conn)
        return [u for u in users if _manages(admin, u)]

    async def create_user(
        self, new: UserCreate, *, by: Principal | None = None, create_sites: bool = False
    ) -> UserRecord:
        """Create a user. ``by`` (an administrator) may only grant sites they have themselves;
        None is the command line (full rights). ``create_sites`` makes missing sites."""
        _check_grant(by, new.sites, new.all_sites)
        self._passwords.check_policy(new.password, username=new.username)
        password_hash = await self._passwords.ahash(new.password)
        async with self._pool.connection() as conn, conn.transaction():
            if create_sites:
                await repository.ensure_sites(conn, new.sites)
            await repository.insert(
                conn,
                username=new.username,
                display_name=new.display_name,
                password_hash=password_hash,
                roles=new.roles,
                all_sites=new.all_sites,
                worker_id=new.worker_id,
            )
            await repository.set_sites(conn, new.username, new.sites)
            user = await repository.get(conn, new.username)
        assert user is not None
        log.info("user created", extra={"username": user.username, "roles": sorted(user.roles)})
        return user

    async def update_user(
        self, username: str, change: UserUpdate, *, by: Principal | None = None
    ) -> UserRecord:
        """Apply ``change``; a new password or disabling revokes the user's refresh tokens."""
        if by is not None:
            await self.get_user(by, username)  # 404 for users outside the admin's sites
        _check_grant(by, change.sites or [], bool(change.all_sites))
        new_hash = None
        if change.password is not None:
            self._passwords.check_policy(change.password, username=username)
            new_hash = await self._passwords.ahash(change.password)
        fields = change.model_dump(exclude_none=True, exclude={"password", "sites"})
        async with self._pool.connection() as conn, conn.transaction():
            if await repository.get(conn, username) is None:
                raise NotFoundError("user", username)
            if fields:
                await repository.update(conn, username, **fields)
            if change.sites is not None:
                await repository.set_sites(conn, username, change.sites)
            if new_hash is not None:
                await repository.set_password(conn, username, new_hash)
            if change.disabled:
                await repository.revoke_tokens(conn, username)
            user = await repository.get(conn, username)
        assert user is not None
        log.info("user updated", extra={"username": username, "fields": sorted(fields)})
        return user


def _manages(admin: Principal, user: UserRecord) -> bool:
    """A site-scoped administrator manages only users confined to their own sites."""
    if admin.sites is None:
        return True
    return not user.all_sites and user.sites <= admin.sites


def _check_grant(by: Principal | None, sites: list[str], all_sites: bool) -> None:
    if by is None or by.sites is None:
        return
    if all_sites:
        raise SiteForbiddenError(by.username, "*")
    for site in sites:
        by.check_site(site)

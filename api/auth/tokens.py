"""Access and refresh tokens: signed JWTs (HS256) with fixed algorithm, issuer and audience."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt

from api.auth.config import SECRET_HINT, AuthSettings, is_weak_secret
from api.auth.models import Principal, Role, UserRecord
from api.errors import AuthenticationError, ConfigError, InvalidCredentialsError, TokenExpiredError

log = logging.getLogger(__name__)

ALGORITHM: Final = "HS256"
AUDIENCE: Final = "permitpulse-api"
LEEWAY_S: Final = 10
ACCESS: Final = "access"
REFRESH: Final = "refresh"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in_s: int


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    """What a verified refresh token says: whose it is and which token version it carries."""

    username: str
    token_version: int


def signing_key(settings: AuthSettings) -> str:
    """The configured secret; in demo mode a random one when unset. Outside demo mode an
    unset or weak secret is a `ConfigError`: the service refuses to start."""
    value = settings.secret.get_secret_value() if settings.secret is not None else ""
    if value and not is_weak_secret(value):
        return value
    if settings.demo:
        if value:
            log.warning("demo mode: using a weak PP_AUTH_SECRET")
            return value.ljust(32, "!")
        log.info("demo mode: tokens are signed with a random key (they end with this process)")
        return secrets.token_urlsafe(48)
    raise ConfigError(f"PP_AUTH_SECRET is not set or is weak; {SECRET_HINT}")


class TokenService:
    """Issues and verifies tokens. ``clock`` (seconds since the epoch) is for issuing only;
    verification always uses the real time."""

    def __init__(
        self,
        *,
        key: str,
        issuer: str,
        access_ttl: dt.timedelta,
        refresh_ttl: dt.timedelta,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._access_ttl = access_ttl
        self._refresh_ttl = refresh_ttl
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> TokenService:
        return cls(
            key=signing_key(settings),
            issuer=settings.issuer,
            access_ttl=dt.timedelta(minutes=settings.access_token_minutes),
            refresh_ttl=dt.timedelta(hours=settings.refresh_token_hours),
        )

    # ------------------------------------------------------------------ issue

    def access_token(self, principal: Principal) -> IssuedToken:
        """An access token carrying the principal's roles and sites."""
        claims = {
            "typ": ACCESS,
            "sub": principal.username,
            "roles": sorted(principal.roles),
            "sites": principal.site_filter() or [],
            "all_sites": principal.sites is None,
            "wid": principal.worker_id,
        }
        return self._issue(claims, self._access_ttl)

    def refresh_token(self, user: UserRecord) -> IssuedToken:
        """A refresh token bound to the user's current token version (bumping it revokes)."""
        return self._issue(
            {"typ": REFRESH, "sub": user.username, "tv": user.token_version}, self._refresh_ttl
        )

    def _issue(self, claims: dict[str, Any], ttl: dt.timedelta) -> IssuedToken:
        now = int(self._clock())
        seconds = int(ttl.total_seconds())
        payload = {
            **claims,
            "iss": self._issuer,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + seconds,
            "jti": uuid.uuid4().hex,
        }
        return IssuedToken(jwt.encode(payload, self._key, algorithm=ALGORITHM), seconds)

    # ------------------------------------------------------------------ verify

    def principal(self, token: str) -> Principal:
        """The principal of a valid access token; `AuthenticationError` otherwise."""
        claims = self._decode(token, ACCESS)
        try:
            roles, sites, wid = claims["roles"], claims["sites"], claims.get("wid")
            if not (isinstance(roles, list) and isinstance(sites, list)):
                raise TypeError("roles and sites must be lists")
            if not all(isinstance(s, str) for s in sites):
                raise TypeError("site ids must be strings")
            return Principal(
                username=claims["sub"],
                roles=frozenset(Role(r) for r in roles),
                sites=None if claims["all_sites"] is True else frozenset(sites),
                worker_id=wid if isinstance(wid, str) else None,
                expires_at=dt.datetime.fromtimestamp(claims["exp"], tz=dt.UTC),
            )
        except (KeyError, TypeError, ValueError, OverflowError, OSError) as exc:
            raise AuthenticationError("malformed token") from exc

    def refresh_claims(self, token: str) -> RefreshClaims:
        """Whose a valid refresh token is; `InvalidCredentialsError` otherwise."""
        try:
            claims = self._decode(token, REFRESH)
        except AuthenticationError as exc:
            raise InvalidCredentialsError() from exc
        tv = claims.get("tv")
        if not isinstance(tv, int) or isinstance(tv, bool):
            raise InvalidCredentialsError()
        return RefreshClaims(username=claims["sub"], token_version=tv)

    def _decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenExpiredError() from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError("invalid token") from exc
        if claims.get("typ") != typ:
            raise AuthenticationError(f"wrong token type (expected {typ})")
        return claims

"""What the authentication layer keeps per application: token service, password hasher and
rate limiters (on ``app.state.auth``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from api.auth.config import AuthSettings
from api.auth.passwords import Passwords
from api.auth.tokens import TokenService
from api.ratelimit import RateLimiter


@dataclass
class AuthContext:
    settings: AuthSettings
    tokens: TokenService
    passwords: Passwords
    login_failures: RateLimiter
    login_attempts: RateLimiter
    _limits: dict[str, RateLimiter] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> AuthContext:
        """Refuses (`ConfigError`) an unset or weak secret outside demo mode."""
        return cls(
            settings=settings,
            tokens=TokenService.from_settings(settings),
            passwords=Passwords(settings),
            login_failures=RateLimiter(what="login", limit=settings.login_failures_per_minute),
            login_attempts=RateLimiter(what="login", limit=settings.login_attempts_per_ip_minute),
        )

    def limiter(self, name: str, *, limit: int, window_s: float = 60.0) -> RateLimiter:
        """The named limiter of this application (created on first use)."""
        if name not in self._limits:
            self._limits[name] = RateLimiter(what=name, limit=limit, window_s=window_s)
        return self._limits[name]

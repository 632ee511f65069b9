"""Authentication and authorisation of the HTTP API and WebSockets.

Contract: every route except ``/healthz``, the token endpoint and the API docs depends on
`current_user` through `require_roles` (or `authenticated_only` for self-service); site data
is checked with `require_site` or ``principal.check_site``. Users log in with the OAuth2
password flow at ``POST /api/v1/auth/token`` and get a short-lived access token (JWT, HS256)
and a refresh token; passwords are stored as argon2id hashes. WebSockets authenticate with
`authenticate_websocket`.
"""

from api.auth.config import AuthSettings
from api.auth.context import AuthContext
from api.auth.deps import (
    TOKEN_URL,
    CurrentUser,
    authenticated_only,
    current_user,
    rate_limited,
    require_roles,
    require_site,
)
from api.auth.models import Principal, Role, UserRecord
from api.auth.tokens import TokenService
from api.auth.ws import authenticate_websocket
from api.errors import (
    AuthenticationError,
    InvalidCredentialsError,
    PermissionDeniedError,
    RateLimitedError,
    SiteForbiddenError,
    TokenExpiredError,
    UserExistsError,
    WeakPasswordError,
)

__all__ = [
    "TOKEN_URL",
    "AuthContext",
    "AuthSettings",
    "AuthenticationError",
    "CurrentUser",
    "InvalidCredentialsError",
    "PermissionDeniedError",
    "Principal",
    "RateLimitedError",
    "Role",
    "SiteForbiddenError",
    "TokenExpiredError",
    "TokenService",
    "UserExistsError",
    "UserRecord",
    "WeakPasswordError",
    "authenticate_websocket",
    "authenticated_only",
    "current_user",
    "rate_limited",
    "require_roles",
    "require_site",
]

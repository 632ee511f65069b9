"""FastAPI dependencies that routers declare: who is calling, with which roles, for which site.

from api.auth import Principal, Role, require_roles, require_site

@router.post("/api/v1/permits/{permit_id}/approve")
async def approve(user: Annotated[Principal, Depends(require_roles(Role.APPROVER))]): ...
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Final

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from starlette.requests import HTTPConnection

from api.auth.context import AuthContext
from api.auth.models import Principal, Role
from api.errors import AuthenticationError, InvalidQueryError

TOKEN_URL: Final = "/api/v1/auth/token"

bearer = OAuth2PasswordBearer(
    tokenUrl=TOKEN_URL,
    scheme_name="OAuth2Password",
    description="Log in with user name and password at the token endpoint; send the access "
    "token as `Authorization: Bearer <token>`.",
    auto_error=False,
)

Dependency = Callable[..., Awaitable[Principal]]


def auth_context(conn: HTTPConnection) -> AuthContext:
    ctx: AuthContext = conn.app.state.auth
    return ctx


async def current_user(
    request: Request, token: Annotated[str | None, Depends(bearer)]
) -> Principal:
    """The caller, from the bearer access token; 401 without a valid one."""
    if not token:
        raise AuthenticationError("not authenticated")
    return auth_context(request).tokens.principal(token)


CurrentUser = Annotated[Principal, Depends(current_user)]


def require_roles(*roles: Role) -> Dependency:
    """A dependency admitting callers with any one of ``roles`` (403 otherwise)."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    allowed = frozenset(Role(r) for r in roles)

    async def dependency(user: CurrentUser) -> Principal:
        user.require_any(allowed)
        return user

    dependency.required_roles = allowed  # type: ignore[attr-defined]
    dependency.__name__ = "require_" + "_or_".join(sorted(allowed))
    return dependency


def authenticated_only() -> Dependency:
    """A dependency admitting every authenticated caller, for self-service routes (own
    profile, own password, logout). Every other route names its roles."""

    async def dependency(user: CurrentUser) -> Principal:
        return user

    dependency.required_roles = frozenset(Role)  # type: ignore[attr-defined]
    dependency.__name__ = "require_authenticated"
    return dependency


def require_site(param: str = "site_id") -> Dependency:
    """A dependency admitting callers assigned to the site named by the path or query
    parameter ``param`` (403 otherwise). Where the site comes from data instead (a permit,
    a device), call ``user.check_site(site_id)`` after loading it."""

    async def dependency(request: Request, user: CurrentUser) -> Principal:
        site = request.path_params.get(param) or request.query_params.get(param)
        if not site:
            raise InvalidQueryError(f"{param} is required")
        user.check_site(str(site))
        return user

    dependency.__name__ = f"require_site_{param}"
    return dependency


def rate_limited(name: str, *, per_minute: int) -> Dependency:
    """A dependency allowing each user ``per_minute`` calls of the routes sharing ``name``
    (429 beyond), e.g. ``Depends(rate_limited("upload", per_minute=30))``."""

    async def dependency(request: Request, user: CurrentUser) -> Principal:
        auth_context(request).limiter(name, limit=per_minute).hit(user.username)
        return user

    dependency.__name__ = f"rate_limited_{name}"
    return dependency

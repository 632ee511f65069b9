"""HTTP routes of authentication (token, me, logout, password) and user management."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Form, Path, Request, Response, status

from api.auth.deps import TOKEN_URL, auth_context, authenticated_only, require_roles
from api.auth.models import USERNAME_RE, Principal, Role
from api.auth.schemas import (
    PasswordChange,
    PrincipalRead,
    TokenRead,
    UserCreate,
    UserRead,
    UserUpdate,
)
from api.auth.service import AuthService, TokenPair
from api.errors import InvalidCredentialsError, InvalidQueryError
from api.schemas import ErrorRead

router = APIRouter(tags=["auth"])
Self = Annotated[Principal, Depends(authenticated_only())]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
UsernamePath = Annotated[str, Path(pattern=USERNAME_RE.pattern, description="Login name.")]
ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorRead},
    409: {"model": ErrorRead},
    422: {"model": ErrorRead},
}


def service(request: Request) -> AuthService:
    ctx = auth_context(request)
    return AuthService(
        pool=request.app.state.runtime.pool, tokens=ctx.tokens, passwords=ctx.passwords
    )


def _token_read(pair: TokenPair) -> TokenRead:
    return TokenRead(
        access_token=pair.access.token,
        expires_in=pair.access.expires_in_s,
        refresh_token=pair.refresh.token,
        refresh_expires_in=pair.refresh.expires_in_s,
    )


@router.post(
    TOKEN_URL,
    response_model=TokenRead,
    responses={401: {"model": ErrorRead}, 422: {"model": ErrorRead}, 429: {"model": ErrorRead}},
)
async def token(
    request: Request,
    grant_type: Annotated[Literal["password", "refresh_token"], Form()] = "password",
    username: Annotated[str | None, Form(max_length=64)] = None,
    password: Annotated[str | None, Form(max_length=256)] = None,
    refresh_token: Annotated[str | None, Form(max_length=4096)] = None,
) -> TokenRead:
    """OAuth2 token endpoint (RFC 6749 §4.3 and §6): log in with user name and password, or
    trade a refresh token for new tokens. Failed logins are limited per user name and client
    address, attempts per client address."""
    ctx = auth_context(request)
    client = request.client.host if request.client else "unknown"
    ctx.login_attempts.hit(f"ip:{client}")
    if grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidQueryError("refresh_token is required for grant_type=refresh_token")
        return _token_read(await service(request).refresh(refresh_token))
    if not username or password is None:
        raise InvalidQueryError("username and password are required for grant_type=password")
    key = f"{username.strip().lower()}@{client}"
    ctx.login_failures.check(key)
    try:
        pair = await service(request).login(username, password)
    except InvalidCredentialsError:
        ctx.login_failures.record(key)
        raise
    return _token_read(pair)


@router.get("/api/v1/auth/me", response_model=PrincipalRead)
async def me(user: Self) -> PrincipalRead:
    """Who the access token belongs to: roles, sites, expiry."""
    return PrincipalRead.of(user)


@router.post("/api/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, user: Self) -> Response:
    """Revoke every refresh token of the caller; the access token runs out by itself."""
    await service(request).logout(user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/api/v1/auth/password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={422: {"model": ErrorRead}},
)
async def change_password(request: Request, user: Self, body: PasswordChange) -> Response:
    """Change one's own password (the old one is needed); revokes one's refresh tokens."""
    await service(request).change_password(user, body.old_password, body.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/v1/users", response_model=list[UserRead], tags=["users"])
async def list_users(request: Request, admin: Admin) -> list[UserRead]:
    """Users an administrator manages (all, or those confined to the administrator's sites)."""
    return [UserRead.of(u) for u in await service(request).list_users(admin)]


@router.post(
    "/api/v1/users",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
    tags=["users"],
)
async def create_user(request: Request, admin: Admin, body: UserCreate) -> UserRead:
    """Create a user; a site-scoped administrator can grant only their own sites."""
    return UserRead.of(await service(request).create_user(body, by=admin))


@router.get("/api/v1/users/{username}", response_model=UserRead, responses=ERRORS, tags=["users"])
async def get_user(request: Request, admin: Admin, username: UsernamePath) -> UserRead:
    return UserRead.of(await service(request).get_user(admin, username))


@router.patch("/api/v1/users/{username}", response_model=UserRead, responses=ERRORS, tags=["users"])
async def update_user(
    request: Request, admin: Admin, username: UsernamePath, body: UserUpdate
) -> UserRead:
    """Change roles, sites, name or password, or disable a user."""
    return UserRead.of(await service(request).update_user(username, body, by=admin))

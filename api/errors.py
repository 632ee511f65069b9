"""Errors of the API and the one table that maps every error class to an HTTP reply."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from detectors.errors import DetectorError, ReplayInputError, SnapshotError
from ingest.errors import DecodeError, PermitPulseError
from permits.enforcement.alarms import AlarmNotFound, ResolutionRequired
from permits.enforcement.evacuation import EvacuationNotFound
from permits.enforcement.pushes import PushNotFound
from permits.enforcement.rules import RulesFileError
from permits.errors import (
    ConflictDetected,
    ContentLocked,
    EvidenceRejected,
    EvidenceTooLarge,
    InvalidTransition,
    NotAuthorized,
    PermitError,
    PermitNotFound,
    RuleViolation,
    SeparationOfDuties,
    UnknownActor,
)
from permits.i18n import negotiate

log = logging.getLogger(__name__)


class NotFoundError(PermitPulseError):
    """Raised when a requested resource does not exist.

    Attributes:
        what: the kind of resource ("device", "permit", ...).
        key: the identifier that was asked for.
    """

    def __init__(self, what: str, key: str) -> None:
        super().__init__(f"{what} {key!r} not found")
        self.what = what
        self.key = key


class InvalidQueryError(PermitPulseError):
    """Raised when a query is well-formed but asks for something that cannot be answered
    (an empty or too long time window, too many rows)."""


class AuthenticationError(PermitPulseError):
    """Raised when a request carries no credentials, or credentials that are not valid."""

    headers: ClassVar[Mapping[str, str]] = {"WWW-Authenticate": "Bearer"}


class InvalidCredentialsError(AuthenticationError):
    """Raised when a user name and password (or a refresh token) do not log anybody in.
    The message never says which part was wrong."""

    def __init__(self) -> None:
        super().__init__("invalid user name or password")


class TokenExpiredError(AuthenticationError):
    """Raised when an access token has expired (the client should refresh it)."""

    def __init__(self) -> None:
        super().__init__("token expired")


class PermissionDeniedError(PermitPulseError):
    """Raised when an authenticated user lacks every role an action needs.

    Attributes:
        username: who asked.
        required: the roles any one of which would do.
    """

    def __init__(self, username: str, required: Iterable[str]) -> None:
        self.username = username
        self.required = tuple(sorted(required))
        super().__init__(f"needs one of the roles: {', '.join(self.required)}")


class SiteForbiddenError(PermitPulseError):
    """Raised when a user asks for data of a site they are not assigned to.

    Attributes:
        username: who asked.
        site_id: the site asked for.
    """

    def __init__(self, username: str, site_id: str) -> None:
        super().__init__(f"no access to site {site_id!r}")
        self.username = username
        self.site_id = site_id


class RateLimitedError(PermitPulseError):
    """Raised when a client has made too many attempts of something in its window.

    Attributes:
        what: the limited action ("login", "upload", ...).
        retry_after_s: seconds until the next attempt is allowed.
    """

    def __init__(self, what: str, retry_after_s: float) -> None:
        self.what = what
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(max(1, math.ceil(retry_after_s)))}
        super().__init__(f"too many {what} attempts; retry in {self.headers['Retry-After']} s")


class UserExistsError(PermitPulseError):
    """Raised when creating a user whose name is taken.

    Attributes:
        username: the name.
    """

    def __init__(self, username: str) -> None:
        super().__init__(f"user {username!r} exists")
        self.username = username


class WeakPasswordError(PermitPulseError):
    """Raised when a chosen password is too short or equals the user name."""


#: Error class → (HTTP status, machine-readable code). The most specific class wins.
ERROR_TABLE: dict[type[PermitPulseError], tuple[int, str]] = {
    TokenExpiredError: (401, "token_expired"),
    InvalidCredentialsError: (401, "invalid_credentials"),
    AuthenticationError: (401, "unauthorized"),
    SiteForbiddenError: (403, "site_forbidden"),
    PermissionDeniedError: (403, "forbidden"),
    RateLimitedError: (429, "too_many_requests"),
    UserExistsError: (409, "conflict"),
    WeakPasswordError: (422, "weak_password"),
    NotFoundError: (404, "not_found"),
    AlarmNotFound: (404, "alarm_not_found"),
    PushNotFound: (404, "push_not_found"),
    EvacuationNotFound: (404, "evacuation_not_found"),
    ResolutionRequired: (422, "resolution_required"),
    RulesFileError: (422, "rules_file_error"),
    InvalidQueryError: (422, "invalid_query"),
    DecodeError: (422, "decode_error"),
    PermitNotFound: (404, "permit_not_found"),
    UnknownActor: (401, "unknown_actor"),
    NotAuthorized: (403, "not_authorized"),
    SeparationOfDuties: (403, "separation_of_duties"),
    InvalidTransition: (409, "invalid_transition"),
    ConflictDetected: (409, "permit_conflict"),
    ContentLocked: (409, "content_locked"),
    EvidenceTooLarge: (413, "evidence_too_large"),
    EvidenceRejected: (415, "evidence_rejected"),
    RuleViolation: (422, "rule_violation"),
    PermitError: (400, "permit_error"),
    ReplayInputError: (422, "replay_input_error"),
    SnapshotError: (409, "snapshot_error"),
    DetectorError: (400, "detector_error"),
    PermitPulseError: (400, "error"),
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


def http_code(status: int) -> str:
    """The machine-readable code of a plain HTTP error status."""
    return _HTTP_CODES.get(status, "http_error")


def status_for(exc: PermitPulseError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return 400, "error"


def error_body(detail: str, code: str) -> dict[str, str]:
    return {"detail": detail, "code": code}


async def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PermitPulseError)
    status, code = status_for(exc)
    code = getattr(exc, "code", None) or code
    headers = getattr(exc, "headers", None)
    if isinstance(exc, PermitError):
        # Rule errors speak the request's language and name the rule and clause.
        lang = negotiate(request.headers.get("accept-language"), request.query_params.get("lang"))
        body: dict[str, object] = {**error_body(exc.localized(lang), code), **exc.reply_extra(lang)}
        return JSONResponse(body, status_code=status, headers=headers)
    return JSONResponse(error_body(str(exc), code), status_code=status, headers=headers)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return JSONResponse(error_body("; ".join(parts), "validation_error"), status_code=422)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = http_code(exc.status_code)
    return JSONResponse(
        error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into ``{"detail", "code"}``."""
    app.add_exception_handler(PermitPulseError, _domain)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)


class ConfigError(PermitPulseError):
    """Raised when the configuration cannot run the requested command."""


class ProvisioningError(PermitPulseError):
    """Raised when a broker account cannot be provisioned (bad id, a clash of names or kinds)."""


class OperationError(PermitPulseError):
    """Raised when a maintenance operation (backup, restore, retention) cannot be carried out.

    Attributes:
        operation: what was attempted.
    """

    def __init__(self, operation: str, detail: str) -> None:
        super().__init__(f"{operation}: {detail}")
        self.operation = operation

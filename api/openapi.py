"""The OpenAPI schema as the server really answers: every error is `ErrorRead`, and the
replies of the authentication layer and the middleware (401, 403, 413, 429) are documented."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.schemas import ErrorRead

_REF = "#/components/schemas/ErrorRead"
_BODY_METHODS = {"post", "put", "patch"}
_ADDED = {
    "400": "Malformed request body (e.g. not valid UTF-8).",
    "401": "Not authenticated: no, an invalid or an expired access token.",
    "403": "Authenticated, but without a role or site this needs.",
    "413": "Request body too large.",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": _REF}}}}


def harden(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a generated schema in place (and return it)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault(
        "ErrorRead", ErrorRead.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for methods in schema.get("paths", {}).values():
        for method, op in methods.items():
            responses = op.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error(responses["422"].get("description", "Invalid request."))
            if op.get("security"):
                for code in ("401", "403"):
                    responses.setdefault(code, _error(_ADDED[code]))
            if method in _BODY_METHODS and "requestBody" in op:
                for code in ("400", "413"):
                    responses.setdefault(code, _error(_ADDED[code]))
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve the hardened schema from ``app.openapi()`` (cached after the first call)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = harden(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    summary=app.summary,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

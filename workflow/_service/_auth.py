"""API-key authentication and role checks, as FastAPI dependencies.

Every ``/api`` route depends on ``require(role)``: the request must carry
``Authorization: Bearer <key>`` for a key that is neither unknown nor revoked (401 otherwise)
and whose role is at least ``role`` (403 otherwise). Keys are looked up by their hash in the
knowledge base on every request, so a key revoked from the CLI stops working at once.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from knowledge import ApiKey, Role, authenticate, role_allows
from workflow._service._errors import ApiError
from workflow._service._state import service_of

__all__ = ["require"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="A taskloom API key (`taskloom keys create --name NAME --role ROLE`).",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require(role: Role) -> Callable[..., ApiKey]:
    """A dependency that admits keys of ``role`` or a higher one and returns the key."""

    def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer),  # noqa: B008 - FastAPI's dependency idiom
    ) -> ApiKey:
        if credentials is None:
            raise ApiError(
                401,
                "This endpoint needs an API key: send 'Authorization: Bearer <key>' "
                "(an admin creates keys with 'taskloom keys create').",
                headers=_CHALLENGE,
            )
        with service_of(request).database.session(read_only=True) as session:
            key = authenticate(session, credentials.credentials)
        if key is None:
            raise ApiError(401, "The API key is unknown or has been revoked.", headers=_CHALLENGE)
        if not role_allows(key.role, role):
            raise ApiError(
                403,
                f"This needs the role '{role}' or a higher one; key '{key.name}' has the "
                f"role '{key.role}'.",
            )
        return key

    return check

"""Who am I, and API-key management for admins (the same as ``taskloom keys``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from knowledge import ApiKey, create_api_key, list_api_keys, revoke_api_key
from workflow._service._auth import require
from workflow._service._schemas import PROTECTED, KeyCreated, KeyRequest, error_responses
from workflow._service._state import service_of

__all__ = ["keys_router"]

keys_router = APIRouter(tags=["keys"], responses=error_responses(*PROTECTED))
Viewer = Annotated[ApiKey, Depends(require("viewer"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]


class Me(BaseModel):
    """The key making the request."""

    key_id: str
    name: str
    role: str


class KeysOut(BaseModel):
    """Every key, revoked ones included; never a secret or a hash."""

    keys: list[ApiKey]


@keys_router.get("/api/me", response_model=Me)
def me(key: Viewer) -> Me:
    """The calling key's id, name and role (the dashboard's login check)."""
    return Me(key_id=key.id, name=key.name, role=key.role)


@keys_router.get("/api/keys", response_model=KeysOut)
def keys(request: Request, key: Admin) -> KeysOut:
    """Every API key, oldest first."""
    with service_of(request).database.session(read_only=True) as session:
        return KeysOut(keys=list_api_keys(session))


@keys_router.post("/api/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyRequest, request: Request, key: Admin) -> KeyCreated:
    """Create a key; its secret is in this answer only."""
    with service_of(request).database.transaction() as session:
        created, secret = create_api_key(session, body.name, body.role, created_by=key.name)
    return KeyCreated(key=created, secret=secret)


@keys_router.delete("/api/keys/{key_id}", response_model=ApiKey)
def revoke_key(key_id: str, request: Request, key: Admin) -> ApiKey:
    """Revoke a key; it is refused from the next request on."""
    with service_of(request).database.transaction() as session:
        return revoke_api_key(session, key_id, actor=key.name)

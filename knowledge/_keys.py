"""API keys of the HTTP service: created, listed, revoked, and checked on every request.

A token reads ``tlk_<id>_<secret>``: ``id`` is 12 hex characters, public, and names the key
in lists, logs and the audit log; ``secret`` is 32 random bytes, URL-safe base64. The token
is returned once, by ``create_api_key``; the database keeps only the SHA-256 of the whole
token, so neither a copy of the database nor its logs can be used to call the service.

Roles grant everything the lower ones do (``ROLES``, ascending):

- ``viewer``: read everything;
- ``labeler``: + give feedback, skip review items;
- ``operator``: + submit tasks, start fine-tuning jobs;
- ``admin``: + promote and roll back models, manage keys.

Store functions take the session first; the caller commits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from knowledge import _models as orm
from knowledge._audit import audit
from knowledge._errors import UnknownApiKeyError

__all__ = [
    "ROLES",
    "ApiKey",
    "Role",
    "authenticate",
    "create_api_key",
    "list_api_keys",
    "revoke_api_key",
    "role_allows",
]

Role = Literal["viewer", "labeler", "operator", "admin"]
ROLES: tuple[str, ...] = get_args(Role)  # ascending: each role may do what those before it may

PREFIX = "tlk"
ID_BYTES = 6  # 12 hex characters: 2**48 ids, so a collision needs millions of keys
SECRET_BYTES = 32
NAME_LIMIT = 200
# Longer than any token create_api_key makes; longer input is refused before it is hashed.
TOKEN_LIMIT = 200
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{{2 * ID_BYTES}}})_([A-Za-z0-9_-]{{43,}})")


class ApiKey(BaseModel):
    """An API key as shown to people: never its token or the token's hash.

    Attributes:
        id: The public key id (the part after ``tlk_`` of the token).
        name: Who or what uses the key; the service records it as the author of feedback.
        role: ``viewer``, ``labeler``, ``operator`` or ``admin``.
        created_by: Who created it.
        created_at: Epoch seconds.
        revoked_at: Epoch seconds; None while the key works.
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: str
    name: str
    role: Role
    created_by: str
    created_at: float
    revoked_at: float | None


def _digest(token: str) -> str:
    # A plain SHA-256, not a slow password hash: tokens carry 256 random bits, so guessing
    # one is infeasible however fast the hash, and every request pays for this check.
    return hashlib.sha256(token.encode()).hexdigest()


def _check_role(role: str, what: str = "role") -> None:
    if role not in ROLES:
        raise ValueError(f"Unknown {what} '{role}'. Valid roles, ascending: {', '.join(ROLES)}.")


def create_api_key(
    session: Session, name: str, role: Role, *, created_by: str
) -> tuple[ApiKey, str]:
    """Create a key and return it with its token, which is not stored and cannot be shown again.

    Args:
        session: The session to write in.
        name: Who or what will use the key (1 to 200 characters).
        role: What it may do (see the module docstring).
        created_by: Who creates it (recorded, and the audit log's actor).

    Returns:
        The key, and its token ``tlk_<id>_<secret>``.

    Raises:
        ValueError: An unknown role, or a name or creator that is empty or too long.
    """
    _check_role(role)
    for field, value in (("name", name), ("created_by", created_by)):
        if not 0 < len(value) <= NAME_LIMIT:
            raise ValueError(
                f"An API key's {field} must be 1 to {NAME_LIMIT} characters, got "
                f"{len(value)}. Name people or services (e.g. 'alice', 'ci-labeller')."
            )
    key_id = secrets.token_hex(ID_BYTES)
    while session.get(orm.ApiKey, key_id) is not None:  # pragma: no cover - 1 in 2**48
        key_id = secrets.token_hex(ID_BYTES)
    token = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    row = orm.ApiKey(
        id=key_id,
        name=name,
        role=role,
        token_sha256=_digest(token),
        created_by=created_by,
        created_at=time.time(),
        revoked_at=None,
    )
    session.add(row)
    audit(session, created_by, "api_key.create", "api_keys", key_id, {"name": name, "role": role})
    return ApiKey.model_validate(row), token


def list_api_keys(session: Session, *, include_revoked: bool = True) -> list[ApiKey]:
    """Return the keys, oldest first (revoked ones too, unless ``include_revoked`` is off)."""
    query = select(orm.ApiKey).order_by(orm.ApiKey.created_at, orm.ApiKey.id)
    if not include_revoked:
        query = query.where(orm.ApiKey.revoked_at.is_(None))
    return [ApiKey.model_validate(row) for row in session.scalars(query)]


def revoke_api_key(session: Session, key_id: str, *, actor: str) -> ApiKey:
    """Revoke a key: it stops working at once. Revoking it again changes nothing.

    Args:
        session: The session to write in.
        key_id: The key's id.
        actor: Who revokes it (the audit log's actor).

    Returns:
        The key, with the time it was first revoked.

    Raises:
        UnknownApiKeyError: No key has that id.
    """
    row = session.get(orm.ApiKey, key_id)
    if row is None:
        raise UnknownApiKeyError(key_id)
    if row.revoked_at is None:
        row.revoked_at = time.time()
        audit(session, actor, "api_key.revoke", "api_keys", key_id, {"name": row.name})
    session.flush()
    return ApiKey.model_validate(row)


def authenticate(session: Session, token: str) -> ApiKey | None:
    """Return the key a token belongs to, or None if it is malformed, unknown or revoked.

    The token is neither logged nor stored; its hash is compared in constant time.
    """
    match = _TOKEN.fullmatch(token) if len(token) <= TOKEN_LIMIT else None
    if match is None:
        return None
    # Only the secret needs a constant-time check: key ids are public (lists, logs), so
    # answering an unknown id faster gives nothing away.
    row = session.get(orm.ApiKey, match.group(1))
    if row is None or not hmac.compare_digest(_digest(token), row.token_sha256):
        return None
    return None if row.revoked_at is not None else ApiKey.model_validate(row)


def role_allows(role: str, needed: str) -> bool:
    """Whether a key of ``role`` may do what needs ``needed`` (roles are ascending).

    Raises:
        ValueError: Either is not a role (a typo must not grant or deny access silently).
    """
    _check_role(role)
    _check_role(needed, "needed role")
    return ROLES.index(role) >= ROLES.index(needed)

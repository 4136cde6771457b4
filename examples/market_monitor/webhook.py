"""Delivering the alert outbox (``mm_alerts``) to a webhook, with the standard library only.

``deliver`` takes the ``pending`` alerts oldest first and POSTs each as JSON::

    {"alert_id": 7, "dedup_key": "TSLA:1700000100", "entity": "TSLA",
     "direction": "bearish", "published_at": 1700000123.0, "summary": "..."}

with ``Content-Type: application/json``, ``Idempotency-Key: <dedup_key>`` and, when a
secret is given, ``X-Taskloom-Signature: sha256=<hex HMAC-SHA256 of the body>`` (the
receiver recomputes it over the raw body bytes to know the alert came from here).

The guarantee: each alert reaches the webhook **at least once**. Its new state is
committed in its own transaction after the POST, so a crash between a 2xx answer and that
commit leaves the alert ``pending`` and the next pass sends it again, under the same
``Idempotency-Key``. A receiver that honours the key (drops a key it has seen) therefore
acts **exactly once per dedup key**; alerts themselves are unique per dedup key in the
outbox (``alerts.AlertSender``). Two ``deliver`` passes running at once may also both send
an alert; the key covers that too.

A 2xx answer marks the alert ``delivered`` (with ``delivered_at``). Any other answer, a
redirect (never followed: the body and its signature go only to the URL given) or a network
error counts an attempt and records ``last_error``; after ``max_attempts`` the alert is
``failed`` and no pass sends it again. A webhook that cannot be reached at all ends the
pass, so an outage spends one attempt per pass, not one per alert. The secret is never
logged or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select

from knowledge import Database
from market_monitor.tables import Alert

__all__ = ["SIGNATURE_HEADER", "Delivery", "deliver", "sign"]

SIGNATURE_HEADER = "X-Taskloom-Signature"
_MAX_ERROR = 500  # characters of last_error kept: enough to diagnose, bounded in the table
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """What one ``deliver`` pass did with the alerts it sent.

    Attributes:
        delivered: Alerts the webhook accepted (2xx).
        failed: Alerts that used up their last attempt in this pass (now ``failed``).
        pending: Alerts whose attempt failed but which will be tried again.
    """

    delivered: int = 0
    failed: int = 0
    pending: int = 0


class _AttemptError(Exception):
    """One POST did not succeed; ``unreachable`` when no HTTP answer came back at all."""

    def __init__(self, message: str, *, unreachable: bool) -> None:
        super().__init__(message)
        self.unreachable = unreachable


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: a POST must not be replayed as a GET, nor signed bodies sent on."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _check(url: str, timeout_s: float, max_attempts: int, limit: int) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The URL itself is not echoed: it may carry a token in its query or user info.
        raise ValueError(
            f"The webhook URL must be http:// or https:// with a host; got scheme "
            f"'{parts.scheme}' and host '{parts.hostname or ''}'."
        )
    if timeout_s <= 0 or max_attempts < 1 or limit < 1:
        raise ValueError(
            f"timeout_s must be > 0, max_attempts and limit >= 1; got timeout_s={timeout_s}, "
            f"max_attempts={max_attempts}, limit={limit}."
        )


def _payload(alert: Alert) -> bytes:
    return json.dumps(
        {
            "alert_id": alert.id,
            "dedup_key": alert.dedup_key,
            "entity": alert.entity,
            "direction": alert.direction,
            "published_at": alert.published_at,
            "summary": alert.summary,
        },
        separators=(",", ":"),
    ).encode()


def _post(
    opener: urllib.request.OpenerDirector,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> None:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with opener.open(request, timeout=timeout_s) as response:
            response.read()  # drain it, so the connection closes cleanly
    except urllib.error.HTTPError as exc:  # an answer, but not a 2xx one
        exc.close()
        raise _AttemptError(f"HTTP {exc.code} {exc.reason}", unreachable=False) from exc
    except (urllib.error.URLError, OSError) as exc:  # refused, DNS, TLS, timeout
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _AttemptError(f"unreachable: {reason}", unreachable=True) from exc
    except http.client.HTTPException as exc:  # an answer that is not HTTP
        raise _AttemptError(f"bad answer: {exc!r}", unreachable=False) from exc


def _record(database: Database, alert_id: int, error: str | None, max_attempts: int) -> str | None:
    """Commit one alert's attempt; returns its new status (None: someone else settled it)."""
    with database.transaction() as session:
        alert = session.get(Alert, alert_id)
        if alert is None or alert.status != "pending":  # a concurrent pass got there first
            return None
        alert.attempts += 1
        if error is None:
            alert.status, alert.delivered_at = "delivered", time.time()
        else:
            alert.last_error = error[:_MAX_ERROR]
            if alert.attempts >= max_attempts:
                alert.status = "failed"
        return alert.status


def deliver(
    database: Database,
    url: str,
    *,
    secret: str | None = None,
    timeout_s: float = 5.0,
    max_attempts: int = 5,
    limit: int = 500,
) -> Delivery:
    """POST up to ``limit`` pending alerts to the webhook ``url``, oldest first.

    Args:
        database: The knowledge base holding the outbox.
        url: The webhook (http or https).
        secret: Signs each body (``X-Taskloom-Signature``); never logged or stored.
        timeout_s: How long one POST may take.
        max_attempts: Attempts after which an alert is ``failed``.
        limit: The most alerts this pass sends.

    Returns:
        What happened to the alerts sent (see ``Delivery``).

    Raises:
        ValueError: ``url`` is not http(s), or a limit is out of range.
    """
    _check(url, timeout_s, max_attempts, limit)
    query = select(Alert).where(Alert.status == "pending")
    with database.session(read_only=True) as session:
        outbox = [
            (alert.id, alert.dedup_key, _payload(alert))
            for alert in session.scalars(query.order_by(Alert.created_at, Alert.id).limit(limit))
        ]
    opener = urllib.request.build_opener(_NoRedirect())
    counts = {"delivered": 0, "failed": 0, "pending": 0}
    for alert_id, key, body in outbox:
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if secret is not None:
            headers[SIGNATURE_HEADER] = sign(body, secret)
        try:
            _post(opener, url, body, headers, timeout_s)
            error, unreachable = None, False
        except _AttemptError as exc:
            error, unreachable = str(exc), exc.unreachable
            _log.warning("alert %d (%s) not delivered: %s", alert_id, key, error)
        status = _record(database, alert_id, error, max_attempts)
        if status is not None:
            counts[status] += 1
        if unreachable:  # the webhook is down: the rest wait for the next pass
            break
    return Delivery(**counts)

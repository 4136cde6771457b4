"""Request body size limit: a body over the limit is refused with 413 before it is parsed.

A declared ``Content-Length`` over the limit is refused before anything is read; a chunked
body is counted as it arrives and refused once it passes the limit, so a client cannot make
the server buffer more than the limit either way.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workflow._service._errors import ApiError, error_response

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_bytes`` with 413 and a JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return (
            f"The request body is larger than the service's limit of {self.max_bytes} bytes; "
            "send less, or start the service with a larger --max-body."
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, self._message())(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise ApiError(413, self._message())
            return message

        await self.app(scope, counted, send)

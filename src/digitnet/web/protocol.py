"""The connection limits of ``digitnet serve``: what a client may hold, and for how long.

uvicorn's own HTTP/1.1 protocol (h11) waits for a request's headers and body as long as the
client likes, so a client that opens connections and sends nothing, or drips its body one
byte at a time, can hold them all until the server runs out of file descriptors. The
protocol made by :func:`guarded_protocol` adds, per connection:

- a cap on open connections: one over ``max_connections`` gets an immediate 503 and is closed;
- a deadline for the request's headers (``header_timeout`` seconds from the connection's
  start, or from the end of the previous response), and one for its body
  (``body_timeout`` seconds from the end of its headers): past either, 408 and close;
- uvicorn's keep-alive timeout for idle connections between requests.

Each refusal is one plain log line on the ``digitnet.serve`` logger; so is running out of file
descriptors while accepting (asyncio's own report of it is a traceback per attempt), at most
once a second.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("digitnet.serve")

_FINISHED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)


def plain_response(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response with a JSON ``{"detail"}`` body that closes the connection."""
    body = json.dumps({"detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    if status == 503:
        head = head[:-2] + "retry-after: 1\r\n\r\n"
    return head.encode("ascii") + body


_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report "out of file descriptors" while accepting as one log line a second, not a
    traceback per attempt; anything else goes to asyncio's default handler."""
    last = [0.0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES:
            now = time.monotonic()
            if now - last[0] >= 1.0:
                last[0] = now
                log.warning("refused new connections for a moment: %s", exc.strerror or exc)
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def guarded_protocol(*, max_connections: int, header_timeout: float, body_timeout: float) -> type:
    """uvicorn's h11 protocol with a connection cap and header and body deadlines (see the module)."""

    class GuardedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _waiting_for: str | None = None
        _loops: set[int] = set()  # the event loops given quiet_accept_errors

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            if id(self.loop) not in self._loops:
                self._loops.add(id(self.loop))
                quiet_accept_errors(self.loop)
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                self._refuse(503, "Service Unavailable",
                             f"too many connections (the limit is {max_connections}); try again shortly")
                return
            self._expect("headers", header_timeout)

        def connection_lost(self, exc: Exception | None) -> None:
            self._expect(None, 0)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow()

        # -- deadlines ----------------------------------------------------------------
        def _follow(self) -> None:
            """Arm the deadline for what the connection now waits for."""
            if self.transport.is_closing():
                return
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                self._expect("body", body_timeout)
            elif state is h11.IDLE and self.conn.our_state is h11.IDLE:
                self._expect("headers", header_timeout)
            elif state in _FINISHED:
                self._expect(None, 0)

        def _expect(self, what: str | None, seconds: float) -> None:
            if what == self._waiting_for and what is not None:
                return  # already counting down
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline, self._waiting_for = None, what
            if what is not None:
                self._deadline = self.loop.call_later(seconds, self._expired, what, seconds)

        def _expired(self, what: str, seconds: float) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            answered = what == "body" and self.cycle is not None and self.cycle.response_started
            self._refuse(408, "Request Timeout", f"the request {what} did not arrive within {seconds:g} s",
                         respond=not answered)

        def _refuse(self, status: int, reason: str, detail: str, *, respond: bool = True) -> None:
            """Answer ``status`` (unless ``respond`` is false: the app has answered), close, log one line."""
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the app's next receive is a disconnect; its sends are dropped
                cycle.message_event.set()
            if respond:
                self.transport.write(plain_response(status, reason, detail))
            self.transport.close()
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.warning("refused %s: %d %s", client, status, detail)

    return GuardedH11Protocol

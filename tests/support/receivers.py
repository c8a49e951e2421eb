"""Real notification receivers on 127.0.0.1 for tests: an HTTP endpoint and an SMTP server.

Both pick a free port, count what they receive, can be told to fail the next
N deliveries, and can go down (the port refuses connections) and come back up
on the same port. Use them as context managers::

    with HttpReceiver() as http, SmtpReceiver(user="alerts", password="s3cret") as smtp:
        deliver(message, [http.url("json", "/hook"), smtp.url(to="ops@example.com")])
        assert http.wait_for(1) and smtp.wait_for(1)
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote

__all__ = ["Received", "HttpReceiver", "SmtpReceiver"]


@dataclass
class Received:
    """One request or mail as received."""

    path: str
    headers: dict[str, str]
    body: bytes
    data: dict = field(default_factory=dict)  # parsed JSON / form fields / mail parts


class _Base:
    def __init__(self) -> None:
        self._lock = threading.Condition()
        self.received: list[Received] = []
        self.rejected = 0
        self._fail = 0
        self._fail_code: int | None = None
        self.delay = 0.0

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def fail_next(self, times: int, code: int | None = None) -> None:
        """Answer the next ``times`` deliveries with an error (HTTP 500 / SMTP 451 by default)."""
        with self._lock:
            self._fail, self._fail_code = times, code

    def _take_failure(self) -> int | None:
        with self._lock:
            if self._fail > 0:
                self._fail -= 1
                self.rejected += 1
                return self._fail_code or self._default_failure
            return None

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` items arrived; ``True`` if they did."""
        end = time.monotonic() + timeout
        with self._lock:
            while len(self.received) < count:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def __enter__(self):
        self.up()
        return self

    def __exit__(self, *_) -> None:
        self.down()


# --- HTTP -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpReceiver(_Base):
    """An HTTP server that accepts apprise's ``json://`` and ``form://`` posts."""

    _default_failure = 500

    def __init__(self) -> None:
        super().__init__()
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def url(self, scheme: str = "json", path: str = "/hook", query: str = "") -> str:
        """An apprise URL pointing here, e.g. ``json://127.0.0.1:PORT/hook``."""
        return f"{scheme}://127.0.0.1:{self.port}{path}" + (f"?{query}" if query else "")

    def up(self) -> None:
        """Start listening (on the same port as before, once it had one)."""
        if self._server is not None:
            return
        self._server = _Server(("127.0.0.1", self.port), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        self._server = self._thread = None

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                failure = receiver._take_failure()
                if failure is not None:
                    self.send_response(failure)
                    self.end_headers()
                    return
                content_type = self.headers.get("Content-Type", "")
                if "json" in content_type:
                    data = json.loads(body or b"{}")
                else:
                    data = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
                receiver._record(Received(self.path, dict(self.headers), body, data))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = _handle

        return Handler


# --- SMTP -------------------------------------------------------------------------


class SmtpReceiver(_Base):
    """An aiosmtpd SMTP server (no TLS), with LOGIN/PLAIN authentication when a user is given."""

    _default_failure = 451

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        super().__init__()
        self.user, self.password = user, password
        self.port = 0
        self.auth_failures = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None

    def url(self, to: str = "ops@example.com", sender: str = "alerts@example.com") -> str:
        """An apprise ``mailto://`` URL for this server: plain SMTP (``mode=insecure``)."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}@" if self.user else ""
        return (f"mailto://{auth}127.0.0.1:{self.port}?mode=insecure"
                f"&from={quote(sender)}&to={quote(to)}")

    def up(self) -> None:
        if self._server is not None:
            return
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
            self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _start(self):
        import warnings

        from aiosmtpd.smtp import SMTP

        def factory():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # AUTH without TLS: fine on 127.0.0.1 in tests
                return SMTP(_Handler(self), hostname="localhost", authenticator=self._authenticate,
                            auth_required=self.user is not None, auth_require_tls=False)

        return await self._loop.create_server(factory, "127.0.0.1", self.port, reuse_address=True)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and self.user is not None
              and auth_data.login.decode() == self.user and auth_data.password.decode() == self.password)
        if not ok:
            self.auth_failures += 1
        return AuthResult(success=ok)

    def down(self) -> None:
        if self._server is None:
            return

        async def stop(server):
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(self._server), self._loop).result(5)
        self._server = None

    def __exit__(self, *_) -> None:
        self.down()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            self._loop = None


class _Handler:
    def __init__(self, receiver: SmtpReceiver) -> None:
        self.receiver = receiver

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if self.receiver.delay:
            await asyncio.sleep(self.receiver.delay)
        failure = self.receiver._take_failure()
        if failure is not None:
            return f"{failure} temporary failure, try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        data = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message["Subject"]),
            "body": body.get_content() if body is not None else "",
            "authenticated": bool(session.authenticated),
        }
        self.receiver._record(Received("", dict(message.items()), envelope.content, data))
        return "250 OK"

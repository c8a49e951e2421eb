"""A test InfluxDB 3 endpoint on 127.0.0.1: Arrow Flight for queries, HTTP for line-protocol writes.

    with InfluxServer(token="secret") as server:
        client = server.client("db")                 # the real influxdb3-python client
        client.write("cpu,host=a usage=1.5 1700000000000000000")
        client.query('SELECT * FROM "cpu"')          # → pyarrow.Table, through Flight
        InfluxDB3Source(server.flight_url, "db", "secret")

Flight (``do_get``) answers the client's JSON tickets (``database``,
``sql_query``, ``query_type``, optional ``params``) after checking the
``authorization: Bearer <token>`` header; queries run on DataFusion set up as
InfluxDB 3 sets it up (``engine.sources.DataFusionSource``: information_schema,
catalog ``public``, schema ``iox``, read-only). HTTP accepts
``POST /api/v2/write?bucket=…[&org=…][&precision=ns|us|ms|s]`` and
``POST /api/v3/write_lp?db=…[&precision=nanosecond|…|auto][&accept_partial=false]``
with ``Authorization: Token …`` or ``Bearer …``; answers 204, or 400 with
InfluxDB 3's JSON error (``partial write of line protocol occurred`` and the
failing lines), 401 for a wrong token. ``GET /ping`` and ``/health`` answer 200.

Both listen on free ports; ``server.delay`` slows every query (to test
timeouts); ``server.requests`` records each HTTP request's method, path and
query parameters.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pyarrow.flight as flight

from engine.sources import SourceError

from .influx_store import Store
from .line_protocol import PRECISIONS, LineError, parse_lines, split_lines, to_nanoseconds

__all__ = ["InfluxServer", "VERSION", "TOKEN"]

#: the token the source tests give their endpoint
TOKEN = "s3cret-token"

VERSION = "3.0.0-test"
_UNAUTHENTICATED = "the request was not authenticated: invalid token"


class _AuthFactory(flight.ServerMiddlewareFactory):
    def __init__(self, server: "InfluxServer"):
        super().__init__()
        self._server = server

    def start_call(self, info, headers):
        token = self._server.token
        if token is None:
            return None
        values = [v.decode() if isinstance(v, bytes) else v for v in headers.get("authorization", [])]
        if f"Bearer {token}" not in values:
            raise flight.FlightUnauthenticatedError(_UNAUTHENTICATED)
        return None


class _Flight(flight.FlightServerBase):
    def __init__(self, server: "InfluxServer", location: str):
        super().__init__(location, middleware={"auth": _AuthFactory(server)})
        self._server = server

    def do_get(self, context, ticket):
        try:
            request = json.loads(ticket.ticket.decode("utf-8"))
            database, sql = request["database"], request["sql_query"]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise flight.FlightServerError(f"invalid ticket: {error}") from None
        query_type = request.get("query_type", "sql")
        if query_type != "sql":
            raise flight.FlightServerError(f"query type {query_type!r} is not supported by this server")
        self._server.wait_delay()
        db = self._server.store.database(database)
        if db is None:
            raise flight.FlightServerError(f"Database not found: {database}")
        try:
            table = db.source().query(sql, params=request.get("params") or None)
        except SourceError as error:
            raise flight.FlightServerError(f"Error while planning query: {error.detail}") from None
        return flight.RecordBatchStream(table.unify_dictionaries().combine_chunks())


def _json(handler: BaseHTTPRequestHandler, status: int, payload=None) -> None:
    body = b"" if payload is None else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("X-Influxdb-Version", VERSION)
    if body:
        handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class _Http(BaseHTTPRequestHandler):
    server_version = "influxdb3-test"
    protocol_version = "HTTP/1.1"

    @property
    def influx(self) -> "InfluxServer":
        return self.server.influx  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _authorized(self) -> bool:
        token = self.influx.token
        if token is None:
            return True
        header = self.headers.get("Authorization", "")
        return header in (f"Token {token}", f"Bearer {token}")

    def _record(self, url, params) -> None:
        self.influx.requests.append({"method": self.command, "path": url.path,
                                     "params": {k: v[-1] for k, v in params.items()}})

    def do_GET(self):
        url = urlsplit(self.path)
        self._record(url, parse_qs(url.query))
        if url.path in ("/ping", "/health"):
            _json(self, 200, {"version": VERSION, "revision": "test"})
        else:
            _json(self, 404, {"error": f"no such endpoint: GET {url.path}"})

    def do_POST(self):
        url = urlsplit(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
        self._record(url, params)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if url.path not in ("/api/v2/write", "/api/v3/write_lp"):
            return _json(self, 404, {"error": f"no such endpoint: POST {url.path}"})
        if not self._authorized():
            return _json(self, 401, {"error": _UNAUTHENTICATED})
        one = {k: v[-1] for k, v in params.items()}
        v3 = url.path == "/api/v3/write_lp"
        database = one.get("db" if v3 else "bucket", "")
        if not database:
            return _json(self, 400, {"error": f"missing the `{'db' if v3 else 'bucket'}` parameter"})
        precision = one.get("precision") or ("auto" if v3 else "ns")
        if precision not in PRECISIONS:
            return _json(self, 400, {"error": f"invalid precision {precision!r}"})
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            text = body.decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            return _json(self, 400, {"error": f"invalid request body: {error}"})
        accept_partial = one.get("accept_partial", "true").lower() != "false"
        return self._write(database, text, precision, accept_partial)

    def _write(self, database: str, text: str, precision: str, accept_partial: bool):
        points, errors = parse_lines(text)
        if errors and not accept_partial:
            return _json(self, 400, {"error": "parsing failed for write_lp endpoint",
                                     "data": [e.to_dict() for e in errors]})
        if points:
            now = time.time_ns()
            times = [now if p.timestamp is None else to_nanoseconds(p.timestamp, precision) for p in points]
            db = self.influx.store.database(database, create=True)
            conflicts = db.write(points, times)
            raw = dict(split_lines(text))
            errors += [LineError(e.line_number, e.error_message, raw.get(e.line_number, "")) for e in conflicts]
        if errors:
            errors.sort(key=lambda e: e.line_number)
            return _json(self, 400, {"error": "partial write of line protocol occurred",
                                     "data": [e.to_dict() for e in errors]})
        return _json(self, 204)


class InfluxServer:
    """Starts both endpoints on free ports of ``host``; ``stop()`` (or leaving ``with``) shuts them down."""

    def __init__(self, token: str | None = "test-token", *, host: str = "127.0.0.1"):
        self.token = token
        self.host = host
        self.store = Store()
        self.delay = 0.0
        self.requests: list[dict] = []
        self._stopping = threading.Event()
        self._flight: _Flight | None = None
        self._http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> "InfluxServer":
        self._flight = _Flight(self, f"grpc+tcp://{self.host}:0")
        self._http = ThreadingHTTPServer((self.host, 0), _Http)
        self._http.daemon_threads = True
        self._http.influx = self  # type: ignore[attr-defined]
        thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                  name="influx-http", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._flight is not None:
            self._flight.shutdown()
            self._flight = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> "InfluxServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def wait_delay(self) -> None:
        if self.delay > 0:
            self._stopping.wait(self.delay)

    # -- addresses ---------------------------------------------------------------------------
    @property
    def http_port(self) -> int:
        return self._http.server_address[1]

    @property
    def flight_port(self) -> int:
        return self._flight.port

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def flight_url(self) -> str:
        """The address to give a query-only client (``InfluxDB3Source``): Flight's port, plain HTTP/2."""
        return f"http://{self.host}:{self.flight_port}"

    def client(self, database: str, *, token: str | None = None, **options):
        """The real ``influxdb3-python`` client, writing over HTTP and querying over Flight."""
        from influxdb_client_3 import InfluxDBClient3

        return InfluxDBClient3(
            host=self.http_url, database=database, token=self.token if token is None else token,
            query_port_overwrite=self.flight_port, **options,
        )

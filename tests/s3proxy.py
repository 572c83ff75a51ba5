"""A small HTTP proxy between boto3 and the S3 server on loopback.

It records every request (so tests can count what logjam sent) and is the
place where tests inject faults::

    proxy.set_faults(Fault(INTERNAL_ERROR, where=is_upload_part, rate=0.5, per_request=2), seed=1)
    ...
    proxy.clear_faults()

A fault rule picks requests (method, path or query substrings, a predicate),
fires at a rate (drawn from a seeded random.Random) and/or for a number of
requests, and then acts instead of a plain forward: answer an S3 error
without forwarding, reset the connection before or in the middle of the
request body, delay, or forward and cut the reply short. Every recorded
Request says which fault, if any, it got, and when it arrived and was
answered, so tests can count attempts and measure the backoff between them.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import random
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

HOP_BY_HOP = ("transfer-encoding", "connection", "keep-alive", "expect")


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict
    started: float = 0.0  # time.monotonic() when its headers arrived
    finished: float | None = None  # when the proxy was done with it (answered, reset or cut)
    fault: str | None = None  # the label of the fault applied to it, if any

    @property
    def target(self) -> tuple[str, str, str]:
        """What a retry of this request repeats: (method, path, query)."""
        return (self.method, self.path, self.query)


# -- which requests -------------------------------------------------------------

def is_put_object(request: Request) -> bool:
    return request.method == "PUT" and "partNumber=" not in request.query \
        and not any(key.lower() == "x-amz-copy-source" for key in request.headers)


def is_upload_part(request: Request) -> bool:
    return request.method == "PUT" and "partNumber=" in request.query


def is_create_multipart(request: Request) -> bool:
    return request.method == "POST" and "uploads" in urllib.parse.parse_qs(request.query, keep_blank_values=True)


def is_complete_multipart(request: Request) -> bool:
    return request.method == "POST" and "uploadId=" in request.query


def is_abort_multipart(request: Request) -> bool:
    return request.method == "DELETE" and "uploadId=" in request.query


def key_prefix(request: Request) -> str | None:
    """The first path component of the key (path-style /BUCKET/KEY), or None for a bucket request."""
    parts = request.path.lstrip("/").split("/", 2)
    if len(parts) < 2 or not parts[1]:
        return None
    return urllib.parse.unquote(parts[1])


class PrefixRateLimit:
    """A fault predicate (where=) for a rate-limited S3: True when the
    request's key prefix has already been let through rate requests within
    the last second, as S3 answers 503 SlowDown while it scales a prefix::

        proxy.set_faults(Fault(SLOW_DOWN, where=PrefixRateLimit(50)))

    Called under the proxy's lock."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.served: dict[str, collections.deque] = collections.defaultdict(collections.deque)

    def __call__(self, request: Request) -> bool:
        prefix = key_prefix(request)
        if prefix is None:
            return False
        window = self.served[prefix]
        while window and window[0] <= request.started - 1.0:
            window.popleft()
        if len(window) >= self.rate:
            return True
        window.append(request.started)
        return False


# -- what a fault does ------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    kind: str  # status, reset_before, reset_mid_body, delay, hold, truncate_response[_in_headers]
    status: int = 0
    code: str = ""
    seconds: float = 0.0
    fraction: float = 0.5
    until: Callable[[], bool] | None = None  # hold: forward once this is true (or after seconds)

    def __str__(self) -> str:
        if self.kind == "status":
            return f"{self.status} {self.code}"
        if self.kind == "delay":
            return f"delay {self.seconds:g}s"
        return self.kind


def status(code: int, error_code: str) -> Action:
    """Answer with an S3 XML error, without forwarding (the request body is read first)."""
    return Action("status", status=code, code=error_code)


def reset_before() -> Action:
    """Reset the connection (RST) once the request's headers are in, before its body."""
    return Action("reset_before")


def reset_mid_body(fraction: float = 0.5) -> Action:
    """Read this fraction of the request body, then reset the connection (RST)."""
    return Action("reset_mid_body", fraction=fraction)


def delay(seconds: float) -> Action:
    """Wait, then forward as usual."""
    return Action("delay", seconds=seconds)


def hold(until: Callable[[], bool], *, timeout: float = 10.0) -> Action:
    """Wait until until() is true (polled; at most timeout seconds), then
    forward as usual: orders requests of several threads by events, not by
    guessing how long each takes."""
    return Action("hold", seconds=timeout, until=until)


def truncate_response(fraction: float = 0.5, *, in_headers: bool = False) -> Action:
    """Forward (S3 acts on the request), then send the reply's headers with the
    full Content-Length but only this fraction of its body, and close. A reply
    without a body (a PUT's 200, a HEAD) is cut in the middle of its status
    line: the request took effect but its reply is lost. With in_headers, the
    status line and one header arrive, then a few bytes of the next header's name."""
    return Action("truncate_response_in_headers" if in_headers else "truncate_response", fraction=fraction)


INTERNAL_ERROR = status(500, "InternalError")
SLOW_DOWN = status(503, "SlowDown")

ERROR_MESSAGES = {
    "InternalError": "We encountered an internal error. Please try again.",
    "SlowDown": "Please reduce your request rate.",
}


@dataclass
class Fault:
    """A rule: requests matching every given criterion get action, at rate,
    at most count times in all and at most per_request times per (method,
    path, query), so that with per_request < attempts each request eventually
    gets through."""

    action: Action
    method: str | None = None
    path: str | None = None  # a substring of the path
    query: str | None = None  # a substring of the query
    where: Callable[[Request], bool] | None = None
    rate: float = 1.0
    count: int | None = None
    per_request: int | None = None
    applied: int = field(default=0, init=False)
    _per_target: collections.Counter = field(default_factory=collections.Counter, init=False, repr=False)

    def matches(self, request: Request) -> bool:
        return (
            (self.method is None or request.method == self.method.upper())
            and (self.path is None or self.path in request.path)
            and (self.query is None or self.query in request.query)
            and (self.where is None or self.where(request))
        )

    def exhausted(self, request: Request) -> bool:
        return (self.count is not None and self.applied >= self.count) or (
            self.per_request is not None and self._per_target[request.target] >= self.per_request
        )


class S3Proxy:
    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(0)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Replies leave at once: with Nagle's algorithm a reply's last
            # segment could wait ~40 ms for the client's delayed ACK, which
            # would pass for backoff.
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                request = Request(self.command, split.path, split.query, dict(self.headers.items()),
                                  started=time.monotonic())
                action = proxy._record(request)
                try:
                    self._serve(action)
                finally:
                    request.finished = time.monotonic()

            def _serve(self, action: Action | None) -> None:
                kind = action.kind if action else None
                if kind == "reset_before":
                    return self._reset()
                if kind == "reset_mid_body":
                    self._read_part_of_body(action.fraction)
                    return self._reset()
                body = self._body()
                if kind == "status":
                    return self._send_error(action)
                if kind == "delay":
                    time.sleep(action.seconds)
                if kind == "hold":
                    deadline = time.monotonic() + action.seconds
                    while not action.until() and time.monotonic() < deadline:
                        time.sleep(0.005)
                response_status, reason, headers, data = self._forward(body)
                head = [f"HTTP/1.1 {response_status} {reason}\r\n"]
                for key, value in headers:
                    if key.lower() not in (*HOP_BY_HOP, "content-length"):
                        head.append(f"{key}: {value}\r\n")
                if self.command == "HEAD":
                    length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
                else:
                    length = str(len(data))
                head.append(f"Content-Length: {length}\r\n\r\n")
                raw_head = "".join(head).encode("latin-1")
                if self.command == "HEAD":
                    data = b""
                if kind in ("truncate_response", "truncate_response_in_headers"):
                    status_end = raw_head.index(b"\r\n") + 2
                    if kind == "truncate_response_in_headers":  # a few bytes into the second header's name
                        raw = raw_head[: raw_head.index(b"\r\n", status_end) + 2 + 3]
                    elif data:
                        raw = raw_head + data[: int(len(data) * action.fraction)]
                    else:  # within the status line: the client cannot tell what happened
                        raw = raw_head[: status_end // 2]
                    self.close_connection = True
                    self.wfile.write(raw)
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_WR)
                    return None
                self.wfile.write(raw_head + data)
                return None

            def _forward(self, body: bytes) -> tuple[int, str, list, bytes]:
                headers = {key: value for key, value in self.headers.items() if key.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                connection = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    data = response.read()
                finally:
                    connection.close()
                return response.status, response.reason, response.getheaders(), data

            def _send_error(self, action: Action) -> None:
                request_id = uuid.uuid4().hex[:16].upper()
                message = ERROR_MESSAGES.get(action.code, action.code)
                data = (
                    '<?xml version="1.0" encoding="UTF-8"?>\n'
                    f"<Error><Code>{escape(action.code)}</Code><Message>{escape(message)}</Message>"
                    f"<Resource>{escape(urllib.parse.urlsplit(self.path).path)}</Resource>"
                    f"<RequestId>{request_id}</RequestId></Error>"
                ).encode()
                head = (
                    f"HTTP/1.1 {action.status} {http.HTTPStatus(action.status).phrase}\r\n"
                    f"Date: {self.date_time_string()}\r\n"
                    "Content-Type: application/xml\r\n"
                    f"x-amz-request-id: {request_id}\r\n"
                    f"Content-Length: {0 if self.command == 'HEAD' else len(data)}\r\n\r\n"
                ).encode("latin-1")
                self.wfile.write(head if self.command == "HEAD" else head + data)  # one write, one segment

            def _read_part_of_body(self, fraction: float) -> None:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    self.rfile.read1(8192)
                    return
                wanted = int(int(self.headers.get("Content-Length") or 0) * fraction)
                while wanted > 0:
                    chunk = self.rfile.read1(min(wanted, 65536))
                    if not chunk:
                        break
                    wanted -= len(chunk)

            def _reset(self) -> None:
                """Closes the connection with a RST, as a crashed or cut-off server would."""
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()  # the makefile() reference would keep the socket open
                self.connection.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # -- faults --------------------------------------------------------------

    def set_faults(self, *faults: Fault, seed: int = 0) -> None:
        """Replaces the fault rules (checked in order; the first that fires wins)
        and reseeds the random draws behind their rates."""
        with self.lock:
            self._faults = list(faults)
            self._random = random.Random(seed)

    def clear_faults(self) -> None:
        self.set_faults()

    @property
    def faults(self) -> list[Fault]:
        with self.lock:
            return list(self._faults)

    @faults.setter
    def faults(self, faults: list[Fault]) -> None:
        self.set_faults(*faults)

    def _record(self, request: Request) -> Action | None:
        with self.lock:
            self.requests.append(request)
            for fault in self._faults:
                if not fault.matches(request) or fault.exhausted(request):
                    continue
                if fault.rate < 1.0 and self._random.random() >= fault.rate:
                    continue
                fault.applied += 1
                fault._per_target[request.target] += 1
                request.fault = str(fault.action)
                return fault.action
        return None

    # -- the server -------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> S3Proxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> S3Proxy:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- what was sent -------------------------------------------------------------

    def clear(self) -> None:
        with self.lock:
            self.requests.clear()

    def calls(self) -> list[tuple[str, str]]:
        """(method, path) of each request so far."""
        with self.lock:
            return [(request.method, request.path) for request in self.requests]

    def matching(self, where: Callable[[Request], bool]) -> list[Request]:
        """The requests so far for which where(request) holds, in arrival order."""
        with self.lock:
            return [request for request in self.requests if where(request)]

    def faulted(self) -> list[Request]:
        """The requests so far that got a fault."""
        return self.matching(lambda request: request.fault is not None)

    def attempts(self) -> collections.Counter:
        """How many times each (method, path, query) was sent: 1 + its retries."""
        with self.lock:
            return collections.Counter(request.target for request in self.requests)

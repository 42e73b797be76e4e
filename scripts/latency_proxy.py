"""An HTTP proxy in front of moto that counts AWS requests by operation and adds latency.

Real DynamoDB, S3 and SQS answer in milliseconds, moto on loopback in far less, so a
local run hides what a request costs. This proxy sits between the SDK (`AWS_ENDPOINT_URL`
points at it) and moto, and for every request:

- names its service and operation: DynamoDB and SQS by `X-Amz-Target` (SQS's query
  protocol by `Action`), S3 by method, key and query (`ListObjectsV2`, `GetObject(range)`
  when a `Range` header is sent, `PutObject(if-absent)` with `If-None-Match`, ...);
- sleeps the service's latency (default 8 ms DynamoDB, 20 ms S3, 10 ms SQS) before
  forwarding it. Each request is served on its own thread, so delays overlap exactly as
  far as the client overlaps its requests: the proxy serialises nothing. (moto's own
  DynamoDB lock, in scripts/moto_server.py, stays behind the proxy: that is the test
  double's limit, and it costs microseconds, not the injected milliseconds.)

Control paths (not forwarded):

    GET  /__proxy/stats   JSON: requests by service and operation, the sum of injected
                          latency (ms) by service and in total, the sum of moto's own
                          time (ms, from forwarding to the response: for DynamoDB, which
                          moto serves one request at a time, the time moto was busy), the
                          requests in flight at the proxy (the most at once, and the mean
                          by Little's law: summed request time / elapsed time), and the
                          time since the last reset (ms)
    POST /__proxy/reset   zeroes the counters

With `--dynamodb-upstream`, DynamoDB requests go to another server than moto's
(scripts/dynamo_standin.py, which serves them concurrently: see its docs).

Usage: python3 scripts/latency_proxy.py --upstream http://127.0.0.1:MOTO -p PORT
           [--dynamodb-upstream http://127.0.0.1:STANDIN]
           [--dynamodb-ms 8] [--s3-ms 20] [--sqs-ms 10]
"""

import argparse
import http.client
import json
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers: never forwarded (RFC 9110 7.6.1).
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
       "upgrade"}
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


class Stats:
    """Counters shared by the serving threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = {}
            self.injected_ms = {}
            self.upstream_ms = {}
            self.in_flight = 0
            self.max_in_flight = 0
            self.busy_ms = 0.0
            self.since = time.monotonic()

    def enter(self):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, busy_ms):
        with self.lock:
            # A reset while requests were in flight may leave them uncounted.
            self.in_flight = max(0, self.in_flight - 1)
            self.busy_ms += busy_ms

    def add(self, service, operation, injected_ms, upstream_ms):
        with self.lock:
            by_op = self.requests.setdefault(service, {})
            by_op[operation] = by_op.get(operation, 0) + 1
            self.injected_ms[service] = self.injected_ms.get(service, 0.0) + injected_ms
            self.upstream_ms[service] = self.upstream_ms.get(service, 0.0) + upstream_ms

    def snapshot(self):
        with self.lock:
            return {
                "requests": {service: dict(sorted(ops.items()))
                             for service, ops in sorted(self.requests.items())},
                "injected_ms": dict(sorted(self.injected_ms.items())),
                "injected_total_ms": sum(self.injected_ms.values()),
                "upstream_ms": dict(sorted(self.upstream_ms.items())),
                "max_in_flight": self.max_in_flight,
                "mean_in_flight": self.busy_ms / max(1e-9, (time.monotonic() - self.since) * 1000.0),
                "elapsed_ms": (time.monotonic() - self.since) * 1000.0,
            }


def s3_operation(method, path, query, headers):
    """An S3 request's operation, from its method, path (path-style) and query."""
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    if not has_key:
        if method == "GET" and params.get("list-type") == ["2"]:
            return "ListObjectsV2"
        if method == "GET" and not parts[0]:
            return "ListBuckets"
        if method == "POST" and "delete" in params:
            return "DeleteObjects"
        name = next(iter(params), "")
        return f"{method} bucket{'?' + name if name else ''}"
    if "uploads" in params or "uploadId" in params:
        return f"{method} multipart"
    if method == "GET":
        return "GetObject(range)" if headers.get("Range") else "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if headers.get("x-amz-copy-source"):
            return "CopyObject"
        if headers.get("If-None-Match"):
            return "PutObject(if-absent)"
        return "PutObject"
    if method == "DELETE":
        return "DeleteObject"
    return f"{method} object"


def classify(method, path, query, headers, body):
    """(service, operation) of one request."""
    target = headers.get("X-Amz-Target", "")
    if target.startswith("DynamoDB_"):
        return "dynamodb", target.split(".", 1)[-1]
    if target.startswith("AmazonSQS"):
        return "sqs", target.split(".", 1)[-1]
    scope = SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "s3"
    if service == "sqs":
        action = urllib.parse.parse_qs(query).get("Action") or urllib.parse.parse_qs(
            body.decode("utf-8", "replace")).get("Action") or ["?"]
        return "sqs", action[0]
    if service == "s3":
        return "s3", s3_operation(method, path, query, headers)
    return service, target or method


def read_chunked(stream):
    """A `Transfer-Encoding: chunked` body, de-chunked."""
    body = bytearray()
    while True:
        size = int(stream.readline().split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += stream.read(size)
        stream.readline()


def make_handler(upstreams, latency_ms, stats):
    """`upstreams`: (host, port) by service, `None` for every other service."""
    local = threading.local()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            # Small request/response pairs: without this, Nagle's algorithm and the peer's
            # delayed ACK add up to 40 ms to a response written in two pieces.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def _body(self):
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return read_chunked(self.rfile)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _reply(self, status, body, content_type="application/json"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _forward(self, service, method, path, body):
            host, port = upstreams.get(service) or upstreams[None]
            headers = {name: value for name, value in self.headers.items()
                       if name.lower() not in HOP and name.lower() != "content-length"}
            if body or method in ("PUT", "POST"):
                headers["Content-Length"] = str(len(body))
            for attempt in range(2):
                connections = local.__dict__.setdefault("connections", {})
                connection = connections.get((host, port))
                if connection is None:
                    connection = connections[(host, port)] = http.client.HTTPConnection(
                        host, port, timeout=120)
                    connection.connect()
                    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    connection.request(method, path, body=body or None, headers=headers)
                    response = connection.getresponse()
                    return response, response.read()
                except (http.client.HTTPException, ConnectionError, OSError):
                    connection.close()
                    connections.pop((host, port), None)
                    if attempt == 1:
                        raise
            raise RuntimeError("unreachable")

        def _handle(self):
            url = urllib.parse.urlsplit(self.path)
            body = self._body()
            if url.path == "/__proxy/stats" and self.command == "GET":
                return self._reply(200, json.dumps(stats.snapshot()).encode())
            if url.path == "/__proxy/reset" and self.command == "POST":
                stats.reset()
                return self._reply(200, b"{}")
            service, operation = classify(self.command, url.path, url.query, self.headers, body)
            delay_ms = latency_ms.get(service, 0.0)
            arrived = time.monotonic()
            stats.enter()
            if delay_ms > 0:
                time.sleep(delay_ms / 1000.0)
            forwarded = time.monotonic()
            try:
                response, payload = self._forward(service, self.command, self.path, body)
            except OSError as err:
                return self._reply(502, json.dumps({"proxy": str(err)}).encode())
            finally:
                done = time.monotonic()
                stats.add(service, operation, delay_ms, (done - forwarded) * 1000.0)
                stats.leave((done - arrived) * 1000.0)
            # Status line, headers and body in one write.
            head = [f"HTTP/1.1 {response.status} {response.reason}"]
            for name, value in response.getheaders():
                if name.lower() not in HOP and name.lower() != "content-length":
                    head.append(f"{name}: {value}")
            if self.command != "HEAD" or payload:
                head.append(f"Content-Length: {len(payload)}")
            else:
                length = response.getheader("Content-Length")
                if length is not None:
                    head.append(f"Content-Length: {length}")
            wire = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
            self.wfile.write(wire + (payload if self.command != "HEAD" else b""))

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="moto's URL, http://host:port")
    parser.add_argument("--dynamodb-upstream",
                        help="where DynamoDB requests go instead (scripts/dynamo_standin.py)")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=0)
    parser.add_argument("--dynamodb-ms", type=float, default=8.0)
    parser.add_argument("--s3-ms", type=float, default=20.0)
    parser.add_argument("--sqs-ms", type=float, default=10.0)
    args = parser.parse_args()
    upstreams = {}
    for service, url in ((None, args.upstream), ("dynamodb", args.dynamodb_upstream)):
        if url:
            parts = urllib.parse.urlsplit(url)
            upstreams[service] = (parts.hostname, parts.port or 80)
    latency = {"dynamodb": args.dynamodb_ms, "s3": args.s3_ms, "sqs": args.sqs_ms}
    server = Server((args.host, args.port),
                    make_handler(upstreams, latency, Stats()))
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

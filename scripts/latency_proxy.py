"""An HTTP proxy in front of moto that counts AWS requests by operation and adds latency.

Real DynamoDB, S3 and SQS answer in milliseconds, moto on loopback in far less, so a
local run hides what a request costs. This proxy sits between the SDK (`AWS_ENDPOINT_URL`
points at it) and moto, and for every request:

- names its service and operation: DynamoDB and SQS by `X-Amz-Target` (SQS's query
  protocol by `Action`), S3 by method, key and query (`ListObjectsV2`, `GetObject(range)`
  when a `Range` header is sent, `PutObject(if-absent)` with `If-None-Match`, ...);
- waits the service's latency (default 8 ms DynamoDB, 20 ms S3, 10 ms SQS) before
  forwarding it. The proxy is one asyncio event loop: a wait is a timer, not a thread,
  so delays overlap exactly as far as the client overlaps its requests and hundreds in
  flight cost next to nothing: the proxy serialises nothing.

Control paths (not forwarded):

    GET  /__proxy/stats   JSON: requests by service and operation, the sum of injected
                          latency (ms) by service and in total, the sum of moto's own
                          time (ms, from forwarding to the response: for DynamoDB, which
                          moto serves one request at a time, the time moto was busy), the
                          requests in flight at the proxy (the most at once, and the mean
                          by Little's law: summed request time / elapsed time), and the
                          time since the last reset (ms), and the latencies injected
                          per request (ms) by service
    POST /__proxy/reset   zeroes the counters

Requests go to moto, except that `--dynamodb-standin` serves DynamoDB requests in this
process from scripts/dynamo_standin.py and `--s3-standin` S3 requests from
scripts/s3_standin.py (without notifications): moto serves DynamoDB one request at a time
in about 9 ms of Python, S3 in about 7 ms, more than the latency simulated.

Usage: python3 scripts/latency_proxy.py --upstream http://127.0.0.1:MOTO -p PORT
           [--dynamodb-standin] [--s3-standin]
           [--dynamodb-ms 8] [--s3-ms 20] [--sqs-ms 10]
"""

import argparse
import asyncio
import json
import re
import socket
import time
import urllib.parse

import dynamo_standin
import s3_standin

# Hop-by-hop headers: never forwarded (RFC 9110 7.6.1).
HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
       "upgrade"}
SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


class Stats:
    """Counters of the requests served (one event loop: no lock)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.requests = {}
        self.injected_ms = {}
        self.upstream_ms = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.busy_ms = 0.0
        self.since = time.monotonic()

    def enter(self):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, busy_ms):
        # A reset while requests were in flight may leave them uncounted.
        self.in_flight = max(0, self.in_flight - 1)
        self.busy_ms += busy_ms

    def add(self, service, operation, injected_ms, upstream_ms):
        by_op = self.requests.setdefault(service, {})
        by_op[operation] = by_op.get(operation, 0) + 1
        self.injected_ms[service] = self.injected_ms.get(service, 0.0) + injected_ms
        self.upstream_ms[service] = self.upstream_ms.get(service, 0.0) + upstream_ms

    def snapshot(self):
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


async def read_chunked(reader):
    """A `Transfer-Encoding: chunked` body, de-chunked."""
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readline()


def parse_head(head):
    """The first line's words and the headers (in order) of an HTTP message's head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return lines[0].split(" ", 2), headers


class Headers(dict):
    """Headers by lower-case name (the last of repeated ones), for lookups."""

    def __init__(self, pairs):
        super().__init__((name.lower(), value) for name, value in pairs)

    def get(self, name, default=None):
        return super().get(name.lower(), default)


async def read_body(reader, headers):
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return await read_chunked(reader)
    length = int(headers.get("Content-Length") or 0)
    return await reader.readexactly(length) if length else b""


class Upstream:
    """Kept-alive connections to one server."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.idle = []

    async def exchange(self, method, target, headers, body):
        """Sends one request; its status, reason, headers and body. A kept-alive
        connection the server closed meanwhile is replaced once."""
        for attempt in range(2):
            fresh = not self.idle
            if fresh:
                reader, writer = await asyncio.open_connection(self.host, self.port)
                writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                           socket.TCP_NODELAY, 1)
            else:
                reader, writer = self.idle.pop()
            try:
                lines = [f"{method} {target} HTTP/1.1"]
                lines += [f"{n}: {v}" for n, v in headers]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                head = await reader.readuntil(b"\r\n\r\n")
                (_, status, *reason), response_headers = parse_head(head)
                found = Headers(response_headers)
                keep = found.get("Connection", "").lower() != "close"
                if method == "HEAD" or status in ("204", "304"):
                    payload = b""
                elif "chunked" in found.get("Transfer-Encoding", "").lower():
                    payload = await read_chunked(reader)
                elif found.get("Content-Length") is not None:
                    payload = await reader.readexactly(int(found.get("Content-Length")))
                else:
                    payload, keep = await reader.read(), False
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                writer.close()
                if fresh or attempt == 1:
                    raise
                continue
            if keep:
                self.idle.append((reader, writer))
            else:
                writer.close()
            return int(status), " ".join(reason), response_headers, payload
        raise RuntimeError("unreachable")


def serve_dynamodb_standin():
    """Serves DynamoDB requests from scripts/dynamo_standin.py, in this process."""
    service = dynamo_standin.Service()

    def call(method, target, headers, body):
        status, payload = dynamo_standin.respond(service, headers.get("X-Amz-Target", ""), body)
        return status, "OK" if status == 200 else "Bad Request", [
            ("Content-Type", "application/x-amz-json-1.0"),
            ("x-amzn-RequestId", "standin")], payload
    return call


def serve_s3_standin():
    """Serves S3 requests from scripts/s3_standin.py, in this process."""
    service = s3_standin.S3Service()

    def call(method, target, headers, body):
        url = urllib.parse.urlsplit(target)
        status, answer_headers, payload = service.respond(method, url.path, url.query,
                                                          headers, body)
        return status, "OK" if status < 300 else "Error", answer_headers, payload
    return call


def make_handler(upstream, latency_ms, stats, standins):
    """`upstream`: the `Upstream` (moto) requests are forwarded to; `standins`: by service,
    the stand-ins that serve that service's requests in this process instead."""

    async def respond(writer, status, reason, headers, payload, head_only=False, length=None):
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{n}: {v}" for n, v in headers
                  if n.lower() not in HOP and n.lower() != "content-length"]
        if not head_only or payload:
            lines.append(f"Content-Length: {len(payload)}")
        elif length is not None:
            lines.append(f"Content-Length: {length}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
                     + (b"" if head_only else payload))
        await writer.drain()

    async def one(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        (method, target, *version), pairs = parse_head(head)
        headers = Headers(pairs)
        body = await read_body(reader, headers)
        # HTTP/1.0 closes after the response unless asked not to; HTTP/1.1 keeps it open.
        if version == ["HTTP/1.0"]:
            keep_alive = headers.get("Connection", "").lower() == "keep-alive"
        else:
            keep_alive = headers.get("Connection", "").lower() != "close"
        url = urllib.parse.urlsplit(target)
        if url.path == "/__proxy/stats" and method == "GET":
            snapshot = stats.snapshot()
            snapshot["latency_ms"] = latency_ms
            await respond(writer, 200, "OK", [("Content-Type", "application/json")],
                          json.dumps(snapshot).encode())
            return keep_alive
        if url.path == "/__proxy/reset" and method == "POST":
            stats.reset()
            await respond(writer, 200, "OK", [("Content-Type", "application/json")], b"{}")
            return keep_alive
        service, operation = classify(method, url.path, url.query, headers, body)
        delay_ms = latency_ms.get(service, 0.0)
        loop = asyncio.get_running_loop()
        arrived = forwarded = loop.time()
        stats.enter()
        try:
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000.0)
            forwarded = loop.time()
            if service in standins:
                answer = standins[service](method, target, headers, body)
            else:
                sent = [(n, v) for n, v in pairs
                        if n.lower() not in HOP and n.lower() != "content-length"]
                if body or method in ("PUT", "POST"):
                    sent.append(("Content-Length", str(len(body))))
                answer = await upstream.exchange(method, target, sent, body)
        except (OSError, asyncio.IncompleteReadError) as err:
            await respond(writer, 502, "Bad Gateway", [("Content-Type", "application/json")],
                          json.dumps({"proxy": str(err)}).encode())
            return False
        finally:
            done = loop.time()
            stats.add(service, operation, delay_ms, (done - forwarded) * 1000.0)
            stats.leave((done - arrived) * 1000.0)
        status, reason, response_headers, payload = answer
        length = Headers(response_headers).get("Content-Length")
        await respond(writer, status, reason, response_headers, payload,
                      head_only=method == "HEAD", length=length)
        return keep_alive

    async def serve(reader, writer):
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # Small request/response pairs: without this, Nagle's algorithm and the peer's
            # delayed ACK add up to 40 ms to a response written in two pieces.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while await one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="moto's URL, http://host:port")
    parser.add_argument("--dynamodb-standin", action="store_true",
                        help="serve DynamoDB requests with scripts/dynamo_standin.py's "
                             "service in this process")
    parser.add_argument("--s3-standin", action="store_true",
                        help="serve S3 requests with scripts/s3_standin.py's service in this "
                             "process (no notifications)")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=0)
    parser.add_argument("--dynamodb-ms", type=float, default=8.0)
    parser.add_argument("--s3-ms", type=float, default=20.0)
    parser.add_argument("--sqs-ms", type=float, default=10.0)
    args = parser.parse_args()
    latency = {"dynamodb": args.dynamodb_ms, "s3": args.s3_ms, "sqs": args.sqs_ms}

    async def run():
        url = urllib.parse.urlsplit(args.upstream)
        standins = {}
        if args.dynamodb_standin:
            standins["dynamodb"] = serve_dynamodb_standin()
        if args.s3_standin:
            standins["s3"] = serve_s3_standin()
        server = await asyncio.start_server(
            make_handler(Upstream(url.hostname, url.port or 80), latency, Stats(), standins),
            args.host, args.port,
            backlog=1024, limit=1 << 20)
        port = server.sockets[0].getsockname()[1]
        print(f"listening on http://{args.host}:{port}", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()

"""An in-memory S3 for the drop benchmark: the object requests Bibgate's blob store makes,
each answered in microseconds, served inside scripts/latency_proxy.py (`--s3-standin`).

Why: with DynamoDB served by scripts/dynamo_standin.py, moto's S3 became the floor under
the fanned-out benchmark: about 7 ms of Python per request, one at a time (its server
holds the GIL), so with a few hundred requests in flight each waited ~100 ms in moto's
queue, more than the 20 ms being simulated.

Path-style requests only, one process, no persistence, no notifications (the benchmark's
process runs, which need S3's events, use moto). Served: CreateBucket, HeadBucket,
PutObject (`If-None-Match: *`), GetObject (one `Range`), HeadObject, DeleteObject,
DeleteObjects, ListObjectsV2 (prefix, continuation, max-keys) and CopyObject;
`aws-chunked` bodies are decoded. Anything else is answered 501 NotImplemented, never silently accepted.

Its fidelity is checked: the blob store's contract suite runs against it
(scripts/bench-aws-drop.sh, before the benchmark; scripts/test.sh).
"""

import hashlib
import time
import urllib.parse
from xml.sax.saxutils import escape, unescape

XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"


def now_http():
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime())


def now_iso():
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def error(status, code, message):
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message><RequestId>standin</RequestId></Error>")
    return status, [("Content-Type", "application/xml")], body.encode()


def xml(root, inner):
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{XMLNS}">{inner}</{root}>'
    return 200, [("Content-Type", "application/xml")], body.encode()


def decode_aws_chunked(body):
    """An `aws-chunked` body (`size[;chunk-signature=...]\\r\\ndata\\r\\n` ... `0` then
    trailers), decoded."""
    out, at = bytearray(), 0
    while True:
        line_end = body.index(b"\r\n", at)
        size = int(body[at:line_end].split(b";", 1)[0], 16)
        at = line_end + 2
        if size == 0:
            return bytes(out)
        out += body[at:at + size]
        at += size + 2


def tags(text, name):
    """The texts of the elements `name` in a small XML document."""
    found, at = [], 0
    opening, closing = f"<{name}>", f"</{name}>"
    while True:
        start = text.find(opening, at)
        if start < 0:
            return found
        end = text.find(closing, start)
        found.append(text[start + len(opening):end])
        at = end + len(closing)


class Object:
    __slots__ = ("data", "etag", "modified")

    def __init__(self, data, etag=None):
        self.data = data
        self.etag = etag or f'"{hashlib.md5(data).hexdigest()}"'
        self.modified = time.time()


class S3Service:
    def __init__(self):
        self.buckets = {}  # name -> {key: Object}

    def respond(self, method, path, query, headers, body):
        """(status, headers, body) answering one request."""
        parts = urllib.parse.unquote(path).lstrip("/").split("/", 1)
        bucket_name = parts[0]
        key = parts[1] if len(parts) == 2 else ""
        params = urllib.parse.parse_qs(query, keep_blank_values=True)
        if ("aws-chunked" in headers.get("Content-Encoding", "")
                or headers.get("x-amz-content-sha256", "").startswith("STREAMING-")):
            body = decode_aws_chunked(body)
        if not bucket_name:
            return error(501, "NotImplemented", "ListBuckets is not served by this stand-in")
        if not key:
            return self.bucket_request(method, bucket_name, params, body)
        bucket = self.buckets.get(bucket_name)
        if bucket is None:
            return error(404, "NoSuchBucket", f"The specified bucket does not exist: {bucket_name}")
        if "uploads" in params or "uploadId" in params:
            return error(501, "NotImplemented", "multipart uploads are not served")
        if method == "PUT":
            source = headers.get("x-amz-copy-source")
            if source:
                return self.copy(bucket, key, source, headers)
            if headers.get("If-None-Match") == "*" and key in bucket:
                return error(412, "PreconditionFailed",
                             "At least one of the pre-conditions you specified did not hold")
            bucket[key] = Object(body)
            return 200, [("ETag", bucket[key].etag)], b""
        found = bucket.get(key)
        if method in ("GET", "HEAD"):
            if found is None:
                if method == "HEAD":
                    return 404, [], b""
                return error(404, "NoSuchKey", "The specified key does not exist.")
            meta = [("ETag", found.etag), ("Last-Modified", now_http()),
                    ("Content-Type", "application/octet-stream"), ("Accept-Ranges", "bytes")]
            wanted = headers.get("Range")
            if method == "GET" and wanted:
                first, _, last = wanted.removeprefix("bytes=").partition("-")
                total = len(found.data)
                start = int(first)
                if start >= total:
                    return error(416, "InvalidRange", "The requested range is not satisfiable")
                end = min(int(last) if last else total - 1, total - 1)
                return 206, meta + [("Content-Range", f"bytes {start}-{end}/{total}")], \
                    found.data[start:end + 1]
            if method == "HEAD":
                return 200, meta + [("Content-Length", str(len(found.data)))], b""
            return 200, meta, found.data
        if method == "DELETE":
            bucket.pop(key, None)
            return 204, [], b""
        return error(501, "NotImplemented", f"{method} of an object is not served")

    def bucket_request(self, method, name, params, body):
        if method == "PUT" and not params:
            if name in self.buckets:
                return error(409, "BucketAlreadyOwnedByYou", "Your previous request to create "
                             "the named bucket succeeded and you already own it.")
            self.buckets[name] = {}
            return 200, [("Location", f"/{name}")], b""
        bucket = self.buckets.get(name)
        if bucket is None:
            return error(404, "NoSuchBucket", f"The specified bucket does not exist: {name}")
        if method == "HEAD" and not params:
            return 200, [], b""
        if method == "GET" and params.get("list-type") == ["2"]:
            return self.list_v2(name, bucket, params)
        if method == "POST" and "delete" in params:
            text = body.decode("utf-8")
            for key in tags(text, "Key"):
                bucket.pop(unescape(key, {"&quot;": '"', "&apos;": "'"}), None)
            quiet = tags(text, "Quiet") == ["true"]
            deleted = "" if quiet else "".join(
                f"<Deleted><Key>{key}</Key></Deleted>" for key in tags(text, "Key"))
            return xml("DeleteResult", deleted)
        return error(501, "NotImplemented", f"{method} of a bucket with {sorted(params)}")

    def list_v2(self, name, bucket, params):
        prefix = params.get("prefix", [""])[0]
        max_keys = int(params.get("max-keys", ["1000"])[0])
        after = params.get("continuation-token", params.get("start-after", [""]))[0]
        keys = sorted(k for k in bucket if k.startswith(prefix) and k > after)
        page, truncated = keys[:max_keys], len(keys) > max_keys
        contents = "".join(
            f"<Contents><Key>{escape(k)}</Key><LastModified>{now_iso()}</LastModified>"
            f"<ETag>{escape(bucket[k].etag)}</ETag><Size>{len(bucket[k].data)}</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>" for k in page)
        inner = (f"<Name>{escape(name)}</Name><Prefix>{escape(prefix)}</Prefix>"
                 f"<KeyCount>{len(page)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>"
                 f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{contents}")
        if truncated:
            inner += f"<NextContinuationToken>{escape(page[-1])}</NextContinuationToken>"
        return xml("ListBucketResult", inner)

    def copy(self, bucket, key, source, headers):
        source_bucket, _, source_key = urllib.parse.unquote(source).lstrip("/").partition("/")
        found = self.buckets.get(source_bucket, {}).get(source_key)
        if found is None:
            return error(404, "NoSuchKey", "The specified key does not exist.")
        if headers.get("If-None-Match") == "*" and key in bucket:
            return error(412, "PreconditionFailed",
                         "At least one of the pre-conditions you specified did not hold")
        bucket[key] = Object(found.data, found.etag)
        return xml("CopyObjectResult",
                   f"<ETag>{escape(found.etag)}</ETag><LastModified>{now_iso()}</LastModified>")

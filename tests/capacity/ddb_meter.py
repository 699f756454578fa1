"""A metering proxy for DynamoDB on an emulator: the independent count of capacity units.

An emulator answers every request with a constant `ConsumedCapacity`, so what a run would cost
on DynamoDB has to be worked out from the items. The system does that itself at each call site
(`adapters/aws/src/capacity.rs`, summed by `traffic aws-measure`); this proxy does it again, from
the wire, without sharing a line of that code, so that the two can be compared.

It forwards every request to the upstream endpoint unchanged and, for DynamoDB's operations,
sizes what DynamoDB would bill by its documented rules ("DynamoDB item sizes and formats",
"DynamoDB read and write operations", "Read/write capacity mode"):

- item size: per attribute, the name's UTF-8 bytes plus the value's size; a string its UTF-8
  bytes, a number one byte per two significant digits plus one, a binary its bytes, a Boolean
  or null one byte, a list or map 3 bytes plus per element its size plus one (a map's keys
  count as names), a set the sum of its elements;
- writes: one unit per started KB (1,024 bytes), at least one; a write of an existing item bills
  the larger of its size before and after (read here by a strongly consistent `GetItem` sent
  before, and for `UpdateItem` after, the write); a conditional write that fails bills the item
  as it is; `BatchWriteItem` bills each item so;
- reads: `GetItem` one unit per started 4 KB, at least one even when the item does not exist;
  `BatchGetItem` each requested item so; `Query` and `Scan` the total size of the items a page
  evaluates (a projection or a filter does not make a page cheaper: such a page is read again
  without them to size it), rounded up to 4 KB, at least one unit; an eventually consistent read
  half of that;
- transactions: twice per item, each item sized as above, condition checks included (a
  cancelled transaction is counted as if it had run: DynamoDB bills the capacity it consumed).

Requests are counted by the application name the AWS SDK puts in its user agent (`app/NAME`,
`AppName` in the SDK's configuration; `-` when there is none), table and operation. The
counts are served as JSON at `GET /__meter` and cleared by `POST /__meter/reset`; nothing of
the upstream's is changed. Made for emulators (it copies the caller's signature onto the
requests it adds, which an emulator does not check); it never runs in front of AWS.

    python tests/capacity/ddb_meter.py --upstream http://127.0.0.1:5300 [--port 0] [--port-file F]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import os
import re
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WRITE_UNIT = 1024
READ_UNIT = 4096
TARGET_PREFIX = "DynamoDB_20120810."
READS = {"GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"}


# --- Sizes ---------------------------------------------------------------------------------


def number_size(text: str) -> int:
    """Bytes of a number: one per two significant digits, plus one."""
    mantissa = text.lstrip("+-").lower().split("e")[0]
    digits = "".join(c for c in mantissa if c.isdigit()).strip("0")
    return math.ceil(max(len(digits), 1) / 2) + 1


def value_size(value: dict) -> int:
    """Bytes of one attribute value in DynamoDB's JSON (`{"S": "..."}`), its name excluded."""
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(e) + 1 for e in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in v.items())
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(number_size(s) for s in v)
    if kind == "BS":
        return sum(len(base64.b64decode(b)) for b in v)
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict | None) -> int:
    """Bytes of an item; 0 for none."""
    if not item:
        return 0
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def write_units(size: int) -> float:
    return float(max(math.ceil(size / WRITE_UNIT), 1))


def read_units(size: int, consistent: bool) -> float:
    units = float(max(math.ceil(size / READ_UNIT), 1))
    return units if consistent else units / 2


# --- The upstream --------------------------------------------------------------------------


class Upstream:
    """Sends requests to the emulator: the callers' own, and the proxy's sizing reads."""

    def __init__(self, url: str):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.local = threading.local()
        self.key_schemas: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def send(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, list, bytes]:
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                self.local.conn = conn
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def call(self, operation: str, payload: dict, auth: str) -> tuple[int, dict]:
        """A DynamoDB call of the proxy's own (never counted)."""
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": TARGET_PREFIX + operation,
            "Authorization": auth,
        }
        status, _, body = self.send("POST", "/", json.dumps(payload).encode(), headers)
        return status, (json.loads(body) if body else {})

    def key_of(self, table: str, item: dict, auth: str) -> dict:
        with self.lock:
            names = self.key_schemas.get(table)
        if names is None:
            _, d = self.call("DescribeTable", {"TableName": table}, auth)
            names = [k["AttributeName"] for k in d["Table"]["KeySchema"]]
            with self.lock:
                self.key_schemas[table] = names
        return {n: item[n] for n in names if n in item}

    def sizes(self, table: str, keys: list[dict], auth: str) -> list[int]:
        """The current size of each item (0 when absent), read strongly consistently."""
        found: dict[str, int] = {}
        for start in range(0, len(keys), 100):
            chunk = keys[start : start + 100]
            pending = {table: {"Keys": chunk, "ConsistentRead": True}}
            for _ in range(10):
                if not pending:
                    break
                _, d = self.call("BatchGetItem", {"RequestItems": pending}, auth)
                for item in d.get("Responses", {}).get(table, []):
                    found[canonical(self.key_of(table, item, auth))] = item_size(item)
                pending = d.get("UnprocessedKeys") or {}
        return [found.get(canonical(k), 0) for k in keys]


def canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


# --- Counting ------------------------------------------------------------------------------


class Meter:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict = {}

    def add(self, app: str, table: str, operation: str, units: float, requests: int = 0):
        kind = "read" if operation in READS else "write"
        with self.lock:
            e = self.counts.setdefault(app, {}).setdefault(table, {}).setdefault(
                operation, {"read": 0.0, "write": 0.0, "requests": 0}
            )
            e[kind] += units
            e["requests"] += requests

    def snapshot(self) -> dict:
        with self.lock:
            return json.loads(json.dumps(self.counts))

    def reset(self):
        with self.lock:
            self.counts = {}


def app_of(headers) -> str:
    ua = " ".join(v for k, v in headers.items() if k.lower() in ("user-agent", "x-amz-user-agent"))
    m = re.search(r"\bapp/([^\s]+)", ua)
    return m.group(1) if m else "-"


def unsized_page(payload: dict) -> dict | None:
    """A Query or Scan without what hides the items it evaluates, or None when nothing does."""
    if not any(k in payload for k in ("ProjectionExpression", "FilterExpression", "Select", "AttributesToGet")):
        return None
    p = {k: v for k, v in payload.items() if k not in ("ProjectionExpression", "FilterExpression", "Select", "AttributesToGet", "ReturnConsumedCapacity")}
    used = " ".join(str(p.get(k, "")) for k in ("KeyConditionExpression",))
    names = {k: v for k, v in p.get("ExpressionAttributeNames", {}).items() if k in used}
    values = {k: v for k, v in p.get("ExpressionAttributeValues", {}).items() if k in used}
    p.pop("ExpressionAttributeNames", None)
    p.pop("ExpressionAttributeValues", None)
    if names:
        p["ExpressionAttributeNames"] = names
    if values:
        p["ExpressionAttributeValues"] = values
    return p


def failed_condition(status: int, body: dict) -> bool:
    return status == 400 and "ConditionalCheckFailed" in str(body.get("__type", ""))


def cancelled(status: int, body: dict) -> bool:
    return status == 400 and "TransactionCanceled" in str(body.get("__type", ""))


def meter_request(up: Upstream, meter: Meter, app: str, operation: str, payload: dict, auth: str, forward):
    """Forwards one DynamoDB request (`forward()` → status, headers, body) and counts it."""
    count = lambda table, units: meter.add(app, table, operation, units, 1)  # noqa: E731

    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        table = payload["TableName"]
        key = payload["Key"] if "Key" in payload else up.key_of(table, payload["Item"], auth)
        (before,) = up.sizes(table, [key], auth)
        status, headers, raw = forward()
        body = json.loads(raw) if raw else {}
        if status == 200:
            if operation == "PutItem":
                after = item_size(payload["Item"])
            elif operation == "UpdateItem":
                (after,) = up.sizes(table, [key], auth)
            else:
                after = 0
            count(table, write_units(max(before, after)))
        elif failed_condition(status, body):
            count(table, write_units(before))
        return status, headers, raw

    if operation == "BatchWriteItem":
        plans = []
        for table, reqs in payload["RequestItems"].items():
            pairs = []
            for r in reqs:
                if "PutRequest" in r:
                    item = r["PutRequest"]["Item"]
                    pairs.append((up.key_of(table, item, auth), item))
                else:
                    pairs.append((r["DeleteRequest"]["Key"], None))
            plans.append((table, pairs, up.sizes(table, [k for k, _ in pairs], auth)))
        status, headers, raw = forward()
        if status == 200:
            body = json.loads(raw) if raw else {}
            unprocessed = {
                canonical(up.key_of(t, r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"], auth))
                for t, rs in (body.get("UnprocessedItems") or {}).items()
                for r in rs
            }
            for table, pairs, befores in plans:
                units = sum(
                    write_units(max(b, item_size(item)))
                    for (key, item), b in zip(pairs, befores)
                    if canonical(key) not in unprocessed
                )
                count(table, units)
        return status, headers, raw

    if operation == "TransactWriteItems":
        actions = []
        for entry in payload["TransactItems"]:
            (kind, a), = entry.items()
            table = a["TableName"]
            key = a["Key"] if "Key" in a else up.key_of(table, a["Item"], auth)
            actions.append((kind, table, key, a.get("Item")))
        befores = [up.sizes(t, [k], auth)[0] for _, t, k, _ in actions]
        status, headers, raw = forward()
        body = json.loads(raw) if raw else {}
        if status == 200 or cancelled(status, body):
            for (kind, table, key, item), before in zip(actions, befores):
                if kind == "Put" and status == 200:
                    size = max(before, item_size(item))
                elif kind == "Update" and status == 200:
                    size = max(before, up.sizes(table, [key], auth)[0])
                else:
                    size = before
                count(table, 2 * write_units(size))
        return status, headers, raw

    status, headers, raw = forward()
    if status != 200:
        return status, headers, raw
    body = json.loads(raw) if raw else {}

    if operation == "GetItem":
        count(payload["TableName"], read_units(item_size(body.get("Item")), bool(payload.get("ConsistentRead"))))
    elif operation == "BatchGetItem":
        for table, req in payload["RequestItems"].items():
            consistent = bool(req.get("ConsistentRead"))
            skipped = {canonical(k) for k in (body.get("UnprocessedKeys") or {}).get(table, {}).get("Keys", [])}
            returned = body.get("Responses", {}).get(table, [])
            if req.get("ProjectionExpression") or req.get("AttributesToGet"):
                keys = [up.key_of(table, i, auth) for i in returned]
                sizes = dict(zip(map(canonical, keys), up.sizes(table, keys, auth)))
            else:
                sizes = {canonical(up.key_of(table, i, auth)): item_size(i) for i in returned}
            units = sum(
                read_units(sizes.get(canonical(k), 0), consistent)
                for k in req["Keys"]
                if canonical(k) not in skipped
            )
            count(table, units)
    elif operation in ("Query", "Scan"):
        page = body
        plain = unsized_page(payload)
        if plain is not None:
            _, page = up.call(operation, plain, auth)
        size = sum(item_size(i) for i in page.get("Items", []))
        count(payload["TableName"], read_units(size, bool(payload.get("ConsistentRead"))))
    elif operation == "TransactGetItems":
        for entry, got in zip(payload["TransactItems"], body.get("Responses", [])):
            table = entry["Get"]["TableName"]
            count(table, 2 * read_units(item_size(got.get("Item")), True))
    return status, headers, raw


# --- The server ----------------------------------------------------------------------------


def make_handler(up: Upstream, meter: Meter):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def reply(self, status: int, headers, body: bytes):
            self.send_response(status)
            for k, v in headers:
                if k.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/__meter":
                return self.reply(200, [("Content-Type", "application/json")], json.dumps(meter.snapshot()).encode())
            self.forward_plain()

        def do_POST(self):
            if self.path == "/__meter/reset":
                meter.reset()
                return self.reply(204, [], b"")
            self.forward_plain()

        do_PUT = do_DELETE = do_HEAD = do_PATCH = lambda self: self.forward_plain()  # noqa: E731

        def forward_plain(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
            forward = lambda: up.send(self.command, self.path, body, headers)  # noqa: E731
            target = self.headers.get("X-Amz-Target", "")
            if target.startswith(TARGET_PREFIX):
                operation = target[len(TARGET_PREFIX):]
                try:
                    payload = json.loads(body) if body else {}
                except ValueError:
                    payload = None
                if isinstance(payload, dict):
                    status, h, raw = meter_request(
                        up, meter, app_of(self.headers), operation, payload, self.headers.get("Authorization", ""), forward
                    )
                    return self.reply(status, h, raw)
            status, h, raw = forward()
            self.reply(status, h, raw)

    return Handler


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, help="the emulator's endpoint, http://host:port")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    ap.add_argument("--port-file", help="write the port here once listening")
    args = ap.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(Upstream(args.upstream), Meter()))
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"ddb_meter: listening on 127.0.0.1:{port}, forwarding to {args.upstream}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The deployed stack, end to end, on an emulator: run by scripts/deployed-e2e.sh.

Deploys infra/template.yaml (transformed locally, as infra/transform.py does for every
emulator) with the four function binaries built for this host, drives it with `traffic
simulate` and checks what the deployed system did:

- the closed windows in the stack's results table equal `traffic replay` of the recorded
  readings (every field; floats to 1e-12 relative);
- the one lamp broken on purpose gives exactly one SNS message, read through an SQS queue
  subscribed to the stack's alarm topic;
- the operations alarms and the dashboard, read back with DescribeAlarms and GetDashboard;
- the archive (tests/deployed/archive.py): Firehose put every recorded reading in S3 as
  Parquet, each of Athena's named queries answers what the recorded readings say (the
  15-minute volumes also what the closed windows count), the merge's own tables hold every
  closed window's readings, global median and top-10 as the results do, and `traffic query`
  gives the same answers over those Parquet objects copied to this machine;
- through the HTTP API's endpoint: reads answer 200, a write without a token and one with a
  forged token are refused, a write with a token from the stack's Cognito client-credentials
  flow is accepted (and deleted again).

Its last line of output is one JSON object with what it saw; it exits 1 when a check failed.

    python tests/deployed/e2e.py --endpoint URL --bin-dir target/debug --traffic target/debug/traffic

Needs boto3, cfn-lint and aws-sam-translator (scripts/requirements-test.txt). The pure parts
(the city, the expected windows, the comparison) are tested by tests/deployed/test_e2e.py.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import math
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "infra"))

#: 2026-01-05T07:00:00Z, the morning rise (as tests/aws/pipeline.rs).
START = "2026-01-05T07:00:00Z"
START_MS = 1_767_596_400_000
#: The simulator's period (one reading per light per simulated minute).
PERIOD_MS = 60_000
MINUTE_MS = 60_000
UNITS_MS = {"s": 1000, "m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 24 * 60 * MINUTE_MS}


def log(msg: str) -> None:
    print(f"deployed-e2e: {msg}", file=sys.stderr, flush=True)


# --- Pure helpers (tested by test_e2e.py) ------------------------------------------------------


def city(n: int) -> dict[str, Any]:
    """A city of `n` four-light intersections on a grid in Rome, in the contract's city format
    (docs/contracts.md), with the simulator's initial fixed timings."""
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"I-{i + 1:04}",
                "lat": round(41.85 + 0.01 * (i // 4), 5),
                "lon": round(12.45 + 0.01 * (i % 4), 5),
                "lights": [{"light": k, "saturation_veh_h": 1800} for k in range(4)],
                "phases": [
                    {"lights": [0, 2], "green_s": 30, "red_s": 34},
                    {"lights": [1, 3], "green_s": 30, "red_s": 34},
                ],
            }
        )
    return {"intersections": out}


def duration_ms(text: str) -> int:
    """`15m`, `1h`, `24h`, `90s`, `2d` in milliseconds (the engine's window syntax)."""
    text = text.strip()
    if text.endswith("ms"):
        return int(text[:-2])
    return int(text[:-1]) * UNITS_MS[text[-1]]


def freshness_minutes(windows: str, schedule: str) -> int:
    """The template's FreshnessMinutes for these Windows and MergeSchedule: twice the shortest
    window plus the merge's period, in whole minutes (rounded up; a rate() schedule only)."""
    shortest = min(duration_ms(w) for w in windows.split(","))
    parts = schedule.removeprefix("rate(").removesuffix(")").split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ValueError(f"not a rate() schedule: {schedule!r}")
    unit = {"minute": MINUTE_MS, "hour": 60 * MINUTE_MS, "day": 24 * 60 * MINUTE_MS}[parts[1].rstrip("s")]
    return -(-(2 * shortest + int(parts[0]) * unit) // MINUTE_MS)


def alarm_widget_names(body: str) -> list[str]:
    """The alarm names a dashboard body's alarm widgets list (the last part of each ARN)."""
    return [
        arn.rsplit(":", 1)[-1]
        for w in json.loads(body).get("widgets", [])
        if w.get("type") == "alarm"
        for arn in w.get("properties", {}).get("alarms", [])
    ]


def rfc3339(ms: int) -> str:
    """Epoch milliseconds as the contract's UTC time (whole seconds, as windows start)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def event_ms(ts: str) -> int:
    """A reading's `ts` (RFC 3339) in epoch milliseconds."""
    from datetime import datetime

    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


def surely_closed(readings: list[dict], windows: str, lateness: str) -> set[tuple[str, str]]:
    """The windows (length, start) that every merge run after all `readings` were ingested
    must report closed: those ending at or before the smallest of the intersections' last
    event times minus the allowed lateness. (The merge's watermark is the smallest over the
    shards, and each shard's newest reading is at least its intersections' newest, so this is
    a lower bound: the stack may close a few more, which are compared all the same.)"""
    times = [(r["intersection_id"], event_ms(r["ts"])) for r in readings]
    newest: dict[str, int] = {}
    for x, t in times:
        newest[x] = max(newest.get(x, t), t)
    if not newest:
        return set()
    watermark = min(newest.values()) - duration_ms(lateness)
    out = set()
    for name in windows.split(","):
        length = duration_ms(name)
        for _, t in times:
            start = t - t % length
            if start + length <= watermark:
                out.add((name, rfc3339(start)))
    return out



def decode_above(b: bytes) -> list[dict]:
    """Postcard of `Vec<MedianEntry>`: a varint count, then per entry the intersection id (a
    varint length and UTF-8) and the median (f64, little-endian)."""

    def varint(pos: int) -> tuple[int, int]:
        n, shift = 0, 0
        while True:
            byte = b[pos]
            pos += 1
            n |= (byte & 0x7F) << shift
            if byte < 0x80:
                return n, pos
            shift += 7

    count, pos = varint(0)
    out = []
    for _ in range(count):
        length, pos = varint(pos)
        ident = b[pos : pos + length].decode()
        pos += length
        (median,) = struct.unpack_from("<d", b, pos)
        pos += 8
        out.append({"intersection_id": ident, "median_vehicles": median})
    return out


def plain(value: Any) -> Any:
    """DynamoDB's decoded values as JSON's: Decimal to int or float, sets to sorted lists."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    return value


def queue_policy(queue_arn: str, service: str, source_arn: str) -> str:
    """A queue policy letting `service` (SNS, EventBridge) send to the queue from `source_arn`
    (the topic, the rule) only."""
    statement = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnEquals": {"aws:SourceArn": source_arn}},
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def differences(a: Any, b: Any, at: str = "") -> list[str]:
    """Where `a` and `b` differ: numbers to 1e-12 relative (the embedded store keeps results
    as JSON, whose floats may come back one ulp off), objects by their keys in any order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return [] if a is b else [f"{at}: {a!r} != {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= 1e-12 * max(abs(a), abs(b))):
            return []
        return [f"{at}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{at}: fields {sorted(set(a) ^ set(b))} in only one"]
        return [d for k in sorted(a) for d in differences(a[k], b[k], f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{at}: {len(a)} items != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{at}[{i}]")]
    return [] if a == b else [f"{at}: {a!r} != {b!r}"]


def compare_windows(stack: list[dict], replayed: list[dict]) -> list[str]:
    """Every window the stack closed against the replay's window of the same length and start
    (the replay closes every window at the end of its file)."""
    by_key = {(w["length"], w["start"]): w for w in replayed}
    out = []
    for w in stack:
        key = (w["length"], w["start"])
        if key not in by_key:
            out.append(f"{key}: closed in the stack, absent from the replay")
            continue
        out.extend(differences(w, by_key[key], f"{key[0]}@{key[1]}"))
    return out


#: The keys the report starts with, in this order.
REPORT_KEYS = (
    "stack",
    "readings",
    "windows_closed",
    "results_equal_replay",
    "sns_messages",
    "api_read_status",
    "api_unauthenticated_write_status",
    "api_authenticated_write_status",
)


def create_named_query(run: "Run", props: dict) -> str:
    """An AWS::Athena::NamedQuery from its template properties (Database and WorkGroup resolved
    to the stack's physical names); returns its id, as CloudFormation's Ref would."""

    def resolve(value: Any) -> Any:
        return run.resources[value["Ref"]] if isinstance(value, dict) and "Ref" in value else value

    kw = {k: resolve(v) for k, v in props.items()}
    return run.client("athena").create_named_query(**kw)["NamedQueryId"]


#: Resource types the driver creates itself where an emulator's CloudFormation does not know
#: them: type -> function(run, properties) -> physical id.
DRIVER_CREATES = {"AWS::Athena::NamedQuery": create_named_query}


def report(seen: dict[str, Any]) -> dict[str, Any]:
    """The output line's object: the issue's keys first (None for a step that did not run),
    then the rest of what was seen."""
    out = {k: seen.get(k) for k in REPORT_KEYS}
    out.update({k: v for k, v in seen.items() if k not in out})
    return out


def host_architecture() -> str:
    """Lambda's name for this machine's architecture."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise SystemExit(f"deployed-e2e: Lambda has no architecture for this {machine} host")


# --- The run -----------------------------------------------------------------------------------


class Run:
    """One deployment and its checks."""

    def __init__(self, a: argparse.Namespace):
        import boto3

        self.a = a
        self.endpoint = a.endpoint.rstrip("/")
        self.region = a.region
        self.session = boto3.session.Session(region_name=a.region)
        self.stack = a.stack
        self.own_work = a.work_dir is None
        self.work = Path(a.work_dir or tempfile.mkdtemp(prefix="deployed-e2e-"))
        self.work.mkdir(parents=True, exist_ok=True)
        self.out: dict[str, Any] = {"stack": a.stack}
        self.failures: list[str] = []
        self.not_checked: list[str] = []
        self.timings: dict[str, float] = {}

    def client(self, service: str):
        return self.session.client(service, endpoint_url=self.endpoint)

    def check(self, ok: bool, what: str) -> None:
        if not ok:
            self.failures.append(what)
            log(f"FAILED: {what}")

    def timed(self, name: str, t0: float) -> None:
        self.timings[name] = round(time.time() - t0, 1)

    # -- deploy

    def deploy(self) -> None:
        import transform as tr

        t0 = time.time()
        bucket = f"{self.stack}-code"
        s3 = self.client("s3")
        try:
            # S3 refuses a LocationConstraint of us-east-1 (its default region): name it
            # only elsewhere, as AWS requires.
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=bucket)
            else:
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": self.region})
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        template = tr.load()
        for binary in sorted(tr.binaries(template).values()):
            # cargo build's target/debug/<binary>, or cargo lambda build's target/lambda/<binary>/bootstrap.
            path = Path(self.a.bin_dir) / binary
            if path.is_dir():
                path = path / "bootstrap"
            if not path.is_file():
                raise SystemExit(f"deployed-e2e: {path} is missing (cargo build -p {binary})")
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                info = zipfile.ZipInfo("bootstrap")
                info.external_attr = 0o755 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, path.read_bytes(), compresslevel=1)
            s3.put_object(Bucket=bucket, Key=f"{self.stack}/{binary}.zip", Body=buf.getvalue())
        account = self.client("sts").get_caller_identity()["Account"]
        arch = host_architecture()
        transformed = tr.transform(
            tr.packaged(template, bucket, f"{self.stack}/", architecture=arch),
            region=self.region,
            account=account,
        )
        params = {
            "StreamShardCount": str(self.a.shards),
            "IngestBatchingWindowSeconds": "1",
            "FaultBatchingWindowSeconds": "1",
            "MergeSchedule": self.a.merge_schedule,
            "Windows": self.a.windows,
            "AllowedLateness": self.a.lateness,
            # Cognito token domains are unique per region: one per stack.
            "AuthDomainPrefix": self.stack.lower(),
            "LogRetentionDays": "1",
            "FreshnessMinutes": str(freshness_minutes(self.a.windows, self.a.merge_schedule)),
            "ArchiveBufferSeconds": "60",
        }
        self.out["architecture"] = arch
        self.out["parameters"] = params
        # Through S3, as `sam deploy` does: the transformed template (about 66 KB with the
        # operations alarms and dashboard) is over CreateStack's 51,200-byte TemplateBody limit;
        # a TemplateURL may name up to 1 MB. Path-style, which emulators and S3 both accept.
        template_key = f"{self.stack}/template.json"
        s3.put_object(Bucket=bucket, Key=template_key, Body=json.dumps(transformed).encode())
        cfn = self.client("cloudformation")
        create = dict(
            StackName=self.stack,
            TemplateURL=f"{self.endpoint}/{bucket}/{template_key}",
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        self.by_driver: dict[str, dict] = {}
        try:
            cfn.create_stack(**create)
        except cfn.exceptions.ClientError as e:
            # An emulator whose CloudFormation lacks a type the driver can create through the
            # service's own API (MiniStack 1.5.33: Athena's named queries): the stack without
            # them, and the driver creates them from the same properties once it is up.
            unknown = set(re.findall(r"AWS::[A-Za-z0-9]+::[A-Za-z0-9]+", str(e))) if "Unrecognized resource types" in str(e) else set()
            if not unknown or not unknown <= set(DRIVER_CREATES):
                raise
            self.by_driver = {lid: r for lid, r in transformed["Resources"].items() if r["Type"] in unknown}
            for lid in self.by_driver:
                del transformed["Resources"][lid]
            s3.put_object(Bucket=bucket, Key=template_key, Body=json.dumps(transformed).encode())
            self.out["created_by_the_driver"] = sorted(unknown)
            log(f"the emulator's CloudFormation lacks {sorted(unknown)}: created through their APIs")
            cfn.create_stack(**create)
        deadline = time.time() + 600
        while True:
            st = cfn.describe_stacks(StackName=self.stack)["Stacks"][0]
            if not st["StackStatus"].endswith("_IN_PROGRESS"):
                break
            if time.time() > deadline:
                raise SystemExit(f"deployed-e2e: the stack is still {st['StackStatus']} after 600 s")
            time.sleep(1)
        if st["StackStatus"] != "CREATE_COMPLETE":
            reasons = [
                f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
                for e in cfn.describe_stack_events(StackName=self.stack)["StackEvents"]
                if "FAILED" in e["ResourceStatus"]
            ]
            raise SystemExit(f"deployed-e2e: {st['StackStatus']}: {reasons}")
        self.outputs = {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}
        self.resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cfn.list_stack_resources(StackName=self.stack)["StackResourceSummaries"]
        }
        for lid, resource in self.by_driver.items():
            self.resources[lid] = DRIVER_CREATES[resource["Type"]](self, resource["Properties"])
        self.out["resources"] = len(self.resources)
        self.timed("deploy", t0)
        log(f"stack {self.stack}: {st['StackStatus']}, {len(self.resources)} resources, {arch} functions")

    def read_operations(self) -> None:
        """The operations alarms and the dashboard, read back: every
        AWS::CloudWatch::Alarm of the template exists under its physical name and notifies the
        operations topic when it fires and when it recovers; the freshness alarm spans the
        FreshnessMinutes given; the dashboard exists, is JSON, and its alarm widget lists
        every alarm."""
        import transform as tr

        t0 = time.time()
        template = tr.load()
        lids = sorted(lid for lid, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm")
        missing = [lid for lid in lids if lid not in self.resources]
        self.check(not missing, f"the stack created no {missing}")
        names = {self.resources[lid]: lid for lid in lids if lid in self.resources}
        topic = self.outputs.get("OperationsTopicArn")
        self.check(bool(topic) and topic != self.outputs.get("AlarmTopicArn"), f"the operations topic {topic} is its own")
        cw = self.client("cloudwatch")
        try:
            found = []
            listed = sorted(names)
            for i in range(0, len(listed), 100):
                found += cw.describe_alarms(AlarmNames=listed[i : i + 100], AlarmTypes=["MetricAlarm"])["MetricAlarms"]
        except Exception as e:  # an emulator without the API
            self.gap(f"CloudWatch DescribeAlarms: {type(e).__name__}: {e}")
            found = None
        if found is not None:
            by_name = {a["AlarmName"]: a for a in found}
            absent = sorted(set(names) - set(by_name))
            self.out["alarms"] = f"{len(set(names) & set(by_name))} of {len(lids)}"
            self.check(not absent, f"describe-alarms does not know {absent}")
            for name, a in by_name.items():
                self.check(
                    a.get("AlarmActions") == [topic] and a.get("OKActions") == [topic],
                    f"{name} notifies {a.get('AlarmActions')} / {a.get('OKActions')}, expected the operations topic both ways",
                )
            fresh = next((a for n, a in by_name.items() if names[n] == "ResultsFreshnessAlarm"), None)
            want = int(freshness_minutes(self.a.windows, self.a.merge_schedule))
            self.check(
                fresh is not None and fresh["EvaluationPeriods"] == want and fresh.get("DatapointsToAlarm") == want,
                f"the freshness alarm spans {fresh and fresh['EvaluationPeriods']} minutes, expected {want}",
            )
        name = self.outputs.get("OperationsDashboardName")
        try:
            body = cw.get_dashboard(DashboardName=name)["DashboardBody"]
        except Exception as e:
            self.gap(f"CloudWatch GetDashboard: {type(e).__name__}: {e}")
            body = None
        if body is not None:
            try:
                widgets = json.loads(body)["widgets"]
                shown = alarm_widget_names(body)
            except (ValueError, KeyError) as e:
                self.check(False, f"the dashboard's body is not the template's JSON: {e}")
            else:
                self.out["dashboard_widgets"] = len(widgets)
                self.check(sorted(shown) == sorted(names), f"the dashboard's alarm widget lists {sorted(set(shown) ^ set(names))} differently")
        self.timed("operations", t0)

    def subscribe_queue(self) -> None:
        sqs = self.client("sqs")
        self.queue = sqs.create_queue(QueueName=f"{self.stack}-alarm-reader")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        topic = self.outputs["AlarmTopicArn"]
        sqs.set_queue_attributes(QueueUrl=self.queue, Attributes={"Policy": queue_policy(arn, "sns.amazonaws.com", topic)})
        self.client("sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

    def subscribe_events(self) -> None:
        """A subscriber of the result events: a rule on the stack's bus sending every
        "Window closed" event to a queue (README, "Subscribing to results")."""
        sqs = self.client("sqs")
        self.events_queue = sqs.create_queue(QueueName=f"{self.stack}-results-reader")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=self.events_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = self.client("events")
        bus = self.outputs["ResultsBusName"]
        rule = events.put_rule(
            Name=f"{self.stack}-windows-closed",
            EventBusName=bus,
            EventPattern=json.dumps({"source": ["traffic.merge"], "detail-type": ["Window closed"]}),
        )["RuleArn"]
        sqs.set_queue_attributes(QueueUrl=self.events_queue, Attributes={"Policy": queue_policy(arn, "events.amazonaws.com", rule)})
        events.put_targets(Rule=f"{self.stack}-windows-closed", EventBusName=bus, Targets=[{"Id": "reader", "Arn": arn}])

    # -- drive

    def simulate(self) -> None:
        t0 = time.time()
        self.city_file = self.work / "city.json"
        self.city_file.write_text(json.dumps(city(self.a.intersections)))
        self.recorded = self.work / "readings.jsonl"
        self.broken = ("I-0002", 1, "green", 5)
        env = dict(os.environ)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_REGION": self.region,
                "TRAFFIC_STORE": "dynamodb",
                "REGISTRY_TABLE": self.outputs["RegistryTableName"],
                "STATE_TABLE": self.outputs["StateTableName"],
                "RESULTS_TABLE": self.outputs["ResultsTableName"],
                "TRAFFIC_WINDOWS": self.a.windows,
                "TRAFFIC_ALLOWED_LATENESS": self.a.lateness,
                "RUST_LOG": "warn",
            }
        )
        # A period every half second: both shards' mappings take their first batches long
        # before a window could close (a shard that has accepted nothing does not hold the
        # watermark back, so a merge between the first shard's start and the second's would
        # close windows without the second's readings).
        subprocess.run(
            [
                self.a.traffic,
                "simulate",
                "--stream",
                self.outputs["ReadingsStreamName"],
                "--city",
                str(self.city_file),
                "--start",
                START,
                "--steps",
                str(self.a.periods),
                "--speedup",
                str(self.a.speedup),
                "--failure-probability",
                "0",
                "--break-lamp",
                "{}:{}:{}@{}".format(*self.broken),
                "--record",
                str(self.recorded),
            ],
            env=env,
            check=True,
            timeout=600,
        )
        self.readings = [json.loads(line) for line in self.recorded.read_text().splitlines() if line.strip()]
        self.out["readings"] = len(self.readings)
        self.check(
            len(self.readings) == self.a.intersections * 4 * self.a.periods,
            f"{len(self.readings)} readings recorded, expected {self.a.intersections * 4 * self.a.periods}",
        )
        self.timed("simulate", t0)
        log(f"{len(self.readings)} readings put into {self.outputs['ReadingsStreamName']} and recorded")

    def closed_windows(self) -> list[dict]:
        """The windows the stack has closed, as its HTTP API serves them (the public contract;
        the results table holds a large result's lists as binary parts). Without the HTTP API
        (LocalStack's community image), from the results table's items."""
        if "HttpApi" in self.resources:
            if getattr(self, "_api_base", None) is None:
                self._api_base = self.api_base()
            out = []
            for length in self.a.windows.split(","):
                # Every window, a page of the largest size (100) at a time, following `next`.
                url = f"{self._api_base}/api/results/{length}?limit=100"
                for _ in range(1000):
                    status, body = self.http("GET", url)
                    if status != 200:
                        return []  # not serving yet: the caller polls again
                    page = json.loads(body)
                    out += [w for w in page["windows"] if w.get("closed") is True]
                    if not page.get("next"):
                        break
                    url = f"{self._api_base}/api/results/{length}?limit=100&cursor={page['next']}"
            return out
        return self.closed_windows_from_table()

    def closed_windows_from_table(self) -> list[dict]:
        from boto3.dynamodb.types import TypeDeserializer

        ddb = self.client("dynamodb")
        de = TypeDeserializer()
        items, start = [], None
        while True:
            kw = {
                "TableName": self.outputs["ResultsTableName"],
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "results"}},
                "ConsistentRead": True,
            }
            if start:
                kw["ExclusiveStartKey"] = start
            page = ddb.query(**kw)
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        out = []
        for item in items:
            r = plain(de.deserialize(item["result"]))
            if r.get("closed") is True:
                r["above_median"] = self.above_median(ddb, item)
                out.append(r)
        return out

    def above_median(self, ddb: Any, item: dict) -> list[dict]:
        """A result's above-median list as adapters/aws/src/results.rs stores it: postcard in
        the item's `above`, or in parts `above#<sk>` / `<version>#<part>` (a large city)."""
        if "above" in item:
            return decode_above(item["above"]["B"])
        if "above_v" not in item:
            return []
        version, parts = item["above_v"]["S"], int(item["above_parts"]["N"])
        page = ddb.query(
            TableName=self.outputs["ResultsTableName"],
            KeyConditionExpression="pk = :p AND begins_with(sk, :v)",
            ExpressionAttributeValues={":p": {"S": f"above#{item['sk']['S']}"}, ":v": {"S": f"{version}#"}},
            ConsistentRead=True,
        )
        got = sorted(page["Items"], key=lambda i: i["sk"]["S"])
        self.check(len(got) == parts, f"{item['sk']['S']}: {len(got)} of {parts} above-median parts")
        return decode_above(b"".join(i["b"]["B"] for i in got))

    def wait_for_windows(self) -> list[dict]:
        """Waits for the scheduled merge to close every window that must be closed."""
        t0 = time.time()
        want = surely_closed(self.readings, self.a.windows, self.a.lateness)
        self.check(len(want) >= 2, f"the run closes only {len(want)} windows: more periods needed")
        deadline = time.time() + self.a.wait
        while True:
            got = self.closed_windows()
            have = {(w["length"], w["start"]) for w in got}
            if want <= have:
                break
            if time.time() > deadline:
                self.check(False, f"after {self.a.wait} s the stack has closed {sorted(have)}, expected at least {sorted(want)}")
                break
            time.sleep(2)
        self.out["windows_closed"] = len(got)
        self.timed("windows_closed", t0)
        log(f"{len(got)} windows closed by the scheduled merge ({sorted(have)})")
        return got

    def compare_with_replay(self, stack_windows: list[dict]) -> None:
        t0 = time.time()
        env = dict(os.environ, TRAFFIC_WINDOWS=self.a.windows, TRAFFIC_ALLOWED_LATENESS=self.a.lateness)
        for k in ("TRAFFIC_STORE", "AWS_ENDPOINT_URL"):
            env.pop(k, None)
        done = subprocess.run(
            [self.a.traffic, "replay", "--city", str(self.city_file), "--shards", str(self.a.shards), str(self.recorded)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        replayed = json.loads(done.stdout)
        diffs = compare_windows(stack_windows, replayed["windows"])
        for d in diffs[:20]:
            log(f"differs from replay: {d}")
        equal = bool(stack_windows) and not diffs
        self.out["results_equal_replay"] = equal
        self.check(equal, f"the stack's closed windows differ from the replay in {len(diffs)} places")
        self.check(len(replayed["alarms"]) == 1, f"the replay raised {len(replayed['alarms'])} alarms, expected 1")
        self.timed("replay", t0)

    def archive(self, stack_windows: list[dict]) -> None:
        """The archive through Athena (tests/deployed/archive.py): every recorded reading is in
        it, the workgroup holds the named queries of queries/, and each answers what the
        recorded readings (and, for the 15-minute volumes, the closed windows) say."""
        import archive as ar

        t0 = time.time()
        names = ("ArchiveWorkGroupName", "ArchiveDatabaseName")
        if not all(n in self.outputs for n in names):
            self.gap("the archive (the stack has no Athena workgroup)")
            return
        check = ar.ArchiveCheck(
            self.client("athena"), self.outputs["ArchiveWorkGroupName"], self.outputs["ArchiveDatabaseName"], self.readings, self.check
        )
        try:
            check.wait_for_every_reading(self.a.wait)
            stored = check.named_queries_exist()
            if set(stored) >= {"volumes-by-15-minutes", "top10-by-hour-of-day", "before-and-after", "lamp-failures"}:
                check.volumes(stored, [w for w in stack_windows if w["length"] == "15m"])
                check.top10_by_hour(stored)
                check.before_after(stored, START_MS + 20 * MINUTE_MS, "I-0001")
                failures = check.failures(stored)
                # The times are checked against the recorded readings above; here, that the
                # one failure is the lamp broken on purpose, still broken.
                x, light, lamp, _ = self.broken
                self.check(
                    [(*f[:3], f[4]) for f in failures] == [(x, light, lamp, None)],
                    f"lamp-failures lists {failures}, expected only {self.broken[:3]}, still broken",
                )
                check.same_locally(
                    self.client("s3"),
                    self.outputs["ArchiveBucketName"],
                    self.a.traffic,
                    self.work,
                    {
                        "volumes-by-15-minutes": ["I-0001", check.first_day, check.last_day],
                        "top10-by-hour-of-day": [check.first_day, check.last_day],
                        "before-and-after": [ar.athena_literal_time(START_MS + 20 * MINUTE_MS), "I-0001", check.first_day, check.last_day],
                        "lamp-failures": [check.first_day, check.last_day],
                    },
                )
                check.merge_outputs([w for w in stack_windows if w.get("closed") is True], self.a.traffic)
                base = self.api_base()
                status, body = self.http("GET", f"{base}/api/timings?limit=500")
                self.check(status == 200, f"GET /api/timings: {status}")
                if status == 200:
                    check.plans(json.loads(body)["timings"])
                    closed_15m = [w for w in stack_windows if w["length"] == "15m" and w.get("closed") is True]
                    check.changes(failures, json.loads(body)["timings"], closed_15m)
                status, body = self.http("GET", f"{base}/api/intersections/I-0001/history")
                self.check(status == 200, f"GET /api/intersections/I-0001/history: {status} {body[:200]!r}")
                if status == 200:
                    check.history(json.loads(body), [w for w in stack_windows if w["length"] == "15m" and w.get("closed") is True], "I-0001")
        except RuntimeError as e:
            self.check(False, f"the archive: {e}")
        s3 = self.client("s3")
        objects = [
            o
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.outputs["ArchiveBucketName"], Prefix="readings/")
            for o in page.get("Contents", [])
        ]
        check.out["objects"] = len(objects)
        check.out["bytes"] = sum(o["Size"] for o in objects)
        self.out["archive"] = check.out
        self.timed("archive", t0)
        log(f"archive: {check.out}")

    def read_alarms(self) -> None:
        """Every message on the subscribed queue: exactly one, for the broken lamp."""
        t0 = time.time()
        sqs = self.client("sqs")
        messages = []
        first_deadline = time.time() + 60
        quiet_until = None
        while True:
            got = sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            for m in got:
                messages.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=m["ReceiptHandle"])
            now = time.time()
            if messages and quiet_until is None:
                quiet_until = now + 5  # a second message would come with the same batch
            if quiet_until is not None and now > quiet_until:
                break
            if not messages and now > first_deadline:
                break
        self.out["sns_messages"] = len(messages)
        self.check(len(messages) == 1, f"{len(messages)} SNS messages, expected exactly 1: {messages}")
        if messages:
            attrs = {k: v.get("Value") for k, v in messages[0].get("MessageAttributes", {}).items()}
            want = {"intersection_id": self.broken[0], "light": str(self.broken[1]), "lamp": self.broken[2]}
            self.check(
                all(attrs.get(k) == v for k, v in want.items()),
                f"the alarm names {attrs}, expected {want}",
            )
        self.timed("alarms", t0)

    def read_events(self, stack_windows: list[dict]) -> None:
        """The "Window closed" events the rule delivered: one per closed window, each equal to
        the stored result's summary."""
        t0 = time.time()
        sqs = self.client("sqs")
        want = {(w["length"], w["start"]): w for w in stack_windows}
        events: list[dict] = []
        deadline = time.time() + 60
        while time.time() < deadline and len({(e["length"], e["start"]) for e in events} & set(want)) < len(want):
            for m in sqs.receive_message(QueueUrl=self.events_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                body = json.loads(m["Body"])
                sqs.delete_message(QueueUrl=self.events_queue, ReceiptHandle=m["ReceiptHandle"])
                self.check(body.get("source") == "traffic.merge", f"an event from {body.get('source')}")
                events.append(body.get("detail", {}))
        diffs = []
        for e in events:
            w = want.get((e.get("length"), e.get("start")))
            if w is None:
                continue  # a window closed after the results were read
            summary = {
                "window": f"{w['length']}@{w['start']}",
                "length": w["length"],
                "start": w["start"],
                "end": w["end"],
                "readings": w["readings"],
                "top10": w["top10"],
                "global_median_vehicles": w["global_median_vehicles"],
                "above_median_count": len(w["above_median"]),
            }
            diffs += differences(plain(e), summary, summary["window"])
        seen = {(e.get("length"), e.get("start")) for e in events}
        self.out["window_closed_events"] = len(events)
        self.out["events_match_results"] = not diffs and set(want) <= seen
        for d in diffs[:10]:
            log(f"event differs from the stored result: {d}")
        self.check(set(want) <= seen, f"no Window closed event for {sorted(set(want) - seen)}")
        self.check(not diffs, f"the events differ from the stored results in {len(diffs)} places")
        self.timed("events", t0)
        log(f"{len(events)} Window closed events read back through the rule's queue")

    # -- the API

    def http(self, method: str, url: str, body: Any = None, headers: dict | None = None) -> tuple[int, bytes]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        h = {"content-type": "application/json"} if body is not None and not isinstance(body, bytes) else {}
        h.update(headers or {})
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def api_base(self) -> str:
        """The HTTP API on the emulator: path-based `/_aws/execute-api/{api}` (MiniStack, and
        LocalStack), with or without the `$default` stage's name."""
        api = self.resources["HttpApi"]
        for base in (f"{self.endpoint}/_aws/execute-api/{api}", f"{self.endpoint}/_aws/execute-api/{api}/$default"):
            status, _ = self.http("GET", f"{base}/api/config")
            if status == 200:
                return base
        return f"{self.endpoint}/_aws/execute-api/{api}"

    def token(self) -> str | None:
        """An access token from the stack's user pool by the client-credentials grant. The
        stack's TokenUrl is the Cognito domain on AWS; an emulator serves the same endpoint
        on its own address."""
        cognito = self.client("cognito-idp")
        client_id = self.outputs["OperatorClientId"]
        secret = cognito.describe_user_pool_client(UserPoolId=self.outputs["UserPoolId"], ClientId=client_id)[
            "UserPoolClient"
        ]["ClientSecret"]
        basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": self.a.write_scope}).encode()
        for url in (f"{self.endpoint}/oauth2/token", f"{self.endpoint}/_aws/cognito-idp/oauth2/token"):
            status, body = self.http(
                "POST", url, form, {"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"}
            )
            if status == 200:
                try:
                    return json.loads(body)["access_token"]
                except (ValueError, KeyError):
                    continue
        return None

    def gap(self, what: str) -> None:
        """A part the emulator cannot do: reported, and a failure under --strict."""
        self.not_checked.append(what)
        log(f"not checked: {what}")
        if self.a.strict:
            self.failures.append(f"not checked under --strict: {what}")

    def api(self) -> None:
        t0 = time.time()
        if "HttpApi" not in self.resources:
            self.gap("the HTTP API: the emulator created no AWS::ApiGatewayV2 resources")
            return
        base = self.api_base()
        status, body = self.http("GET", f"{base}/api/intersections?limit=500")
        self.out["api_read_status"] = status
        self.check(status == 200, f"GET /api/intersections answered {status}: {body[:200]!r}")
        if status == 200:
            ids = sorted(x["id"] for x in json.loads(body)["intersections"])
            self.check(ids == [x["id"] for x in city(self.a.intersections)["intersections"]], f"the API lists {ids}")
        status, _ = self.http("GET", f"{base}/")
        self.check(status == 200, f"GET / (the dashboard) answered {status}")
        status, body = self.http("GET", f"{base}/api/results")
        self.check(status == 200, f"GET /api/results answered {status}: {body[:200]!r}")
        self.stats(base)

        new = city(self.a.intersections + 1)["intersections"][-1]
        url = f"{base}/api/intersections"
        status, body = self.http("POST", url, new)
        self.out["api_unauthenticated_write_status"] = status
        self.check(status in (401, 403), f"a write without a token answered {status}: {body[:200]!r}")

        if "UserPool" not in self.resources:
            self.gap("authenticated writes: the emulator created no Cognito user pool to issue tokens")
            return
        token = self.token()
        if token is None:
            self.check(False, "no token from the stack's Cognito client-credentials flow")
            return
        # The same token with its signature's bytes changed: an authorizer that only decodes
        # the token would let it through.
        head, claims, sig = token.split(".")
        forged = ".".join([head, claims, ("A" if sig[0] != "A" else "B") + sig[1:]])
        status, _ = self.http("POST", url, new, {"authorization": f"Bearer {forged}"})
        self.out["api_forged_token_write_status"] = status
        if 200 <= status < 300:
            # Not the system's fault: the emulator's authorizer does not verify signatures.
            self.gap("JWT signatures: the emulator's authorizer accepted a forged token")
            self.http("DELETE", f"{url}/{new['id']}", headers={"authorization": f"Bearer {forged}"})
        else:
            self.check(status in (401, 403), f"a write with a forged token answered {status}")
        status, _ = self.http("GET", f"{url}/{new['id']}")
        self.check(status == 404, f"refused writes changed nothing, yet GET {new['id']} answered {status}")

        status, body = self.http("POST", url, new, {"authorization": f"Bearer {token}"})
        self.out["api_authenticated_write_status"] = status
        self.check(200 <= status < 300, f"a write with the stack's token answered {status}: {body[:200]!r}")
        status, _ = self.http("GET", f"{url}/{new['id']}")
        self.check(status == 200, f"the accepted write is not readable: GET {new['id']} answered {status}")
        status, _ = self.http("DELETE", f"{url}/{new['id']}", headers={"authorization": f"Bearer {token}"})
        self.check(200 <= status < 300, f"deleting it again with the token answered {status}")
        self.timed("api", t0)

    def stats(self, base: str) -> None:
        """The merge's figures and the latency from arrival to result, as /api/stats gives
        them (wall time: the stream's arrival times and the merge's clock)."""
        status, body = self.http("GET", f"{base}/api/stats?minutes=1440")
        self.check(status == 200, f"GET /api/stats answered {status}: {body[:200]!r}")
        if status != 200:
            return
        totals = {f["function"]: f for f in json.loads(body).get("functions", [])}
        merge = totals.get("merge", {})
        self.out["merge_runs"] = merge.get("invocations", 0)
        self.out["merge_mean_run_ms"] = round(merge.get("mean_latency_ms", 0))
        self.out["arrival_to_result_mean_ms"] = {
            name: round(f["mean_latency_ms"])
            for name, f in sorted(totals.items())
            if (name.startswith("result_") or name == "retiming") and f["records"] > 0
        }
        self.check(merge.get("invocations", 0) > 0, "the merge recorded no runs in /api/stats")
        self.check(
            any(n.startswith("result_") for n in self.out["arrival_to_result_mean_ms"]),
            f"no arrival-to-result latency in /api/stats: {sorted(totals)}",
        )

    # -- new code with cargo lambda deploy

    def lambda_deploy(self) -> None:
        """scripts/lambda-deploy.sh on every function of the stack, with cargo-lambda's
        bootstraps from --lambda-deploy (scripts/lambda-build.sh): each function must come out
        with the code uploaded (Lambda's CodeSha256 is the SHA-256 of the zip cargo-lambda made
        beside the bootstrap) and everything else the stack gave it unchanged (role,
        environment, memory, timeout, tracing). Last, because the new code may be for another
        architecture than the emulator runs."""
        t0 = time.time()
        lam = self.client("lambda")
        keep = ("Role", "Environment", "MemorySize", "Timeout", "TracingConfig", "Runtime", "Handler")
        functions = {f: f"{f.capitalize()}Function" for f in ("ingest", "fault", "merge", "api")}
        before = {f: lam.get_function_configuration(FunctionName=self.resources[lid]) for f, lid in functions.items()}
        env = dict(os.environ, AWS_ENDPOINT_URL=self.endpoint, AWS_REGION=self.region, LAMBDA_DIR=self.a.lambda_deploy)
        done = subprocess.run(
            ["bash", str(ROOT / "scripts/lambda-deploy.sh"), self.stack, *functions],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.check(done.returncode == 0, f"scripts/lambda-deploy.sh exited {done.returncode}")
        seen = {}
        for f, lid in functions.items():
            after = lam.get_function_configuration(FunctionName=self.resources[lid])
            zipped = Path(self.a.lambda_deploy) / f / "bootstrap.zip"
            want = base64.b64encode(hashlib.sha256(zipped.read_bytes()).digest()).decode() if zipped.is_file() else None
            changed = [k for k in keep if before[f].get(k) != after.get(k)]
            self.check(after["CodeSha256"] == want, f"{f}: CodeSha256 {after['CodeSha256']} after cargo lambda deploy, not its zip's {want}")
            self.check(after["CodeSha256"] != before[f]["CodeSha256"], f"{f}: cargo lambda deploy left the old code")
            self.check(not changed, f"{f}: cargo lambda deploy changed {changed}")
            self.check(
                after["Role"] == self.role_arn(f"{f.capitalize()}Role"),
                f"{f}: role {after['Role']} is not the stack's {f.capitalize()}Role",
            )
            seen[f] = {"code_sha256": after["CodeSha256"], "role_env_memory_timeout_kept": not changed}
        self.out["cargo_lambda_deploy"] = seen
        self.timed("cargo_lambda_deploy", t0)
        log(f"cargo lambda deploy: {len(seen)} functions updated, role and environment kept")

    def role_arn(self, lid: str) -> str:
        return self.client("iam").get_role(RoleName=self.resources[lid])["Role"]["Arn"]

    # -- teardown (only for an emulator this script did not start: MiniStack goes as a whole)

    def teardown(self) -> None:
        cfn = self.client("cloudformation")
        try:
            cfn.delete_stack(StackName=self.stack)
            ddb = self.client("dynamodb")
            for lid in ("StateTable", "RegistryTable", "ResultsTable"):  # DeletionPolicy: Retain
                if lid in self.resources:
                    ddb.delete_table(TableName=self.resources[lid])
            self.client("sqs").delete_queue(QueueUrl=self.queue)
            self.client("sqs").delete_queue(QueueUrl=self.events_queue)
        except Exception as e:  # best effort: the checks' outcome stands
            log(f"teardown: {e}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"), required=not os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--region", default=os.environ.get("AWS_REGION", "eu-south-1"))
    p.add_argument("--stack", default=f"traffic-e2e-{os.getpid()}")
    p.add_argument("--emulator", default="", help="what runs at the endpoint (for the report)")
    p.add_argument(
        "--bin-dir",
        default=str(ROOT / "target/debug"),
        help="where ingest, fault, merge and api are (as files, or as <name>/bootstrap)",
    )
    p.add_argument("--traffic", default=str(ROOT / "target/debug/traffic"))
    p.add_argument(
        "--lambda-deploy",
        metavar="LAMBDA_DIR",
        help="last, deploy cargo-lambda's bootstraps from LAMBDA_DIR/<name>/bootstrap to the stack's "
        "functions with scripts/lambda-deploy.sh and check that only their code changed",
    )
    p.add_argument("--intersections", type=int, default=12)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--periods", type=int, default=40, help="simulated minutes")
    p.add_argument("--speedup", type=float, default=120.0, help="simulated seconds per wall second")
    p.add_argument("--windows", default="15m,1h,24h")
    p.add_argument("--lateness", default="2m")
    p.add_argument("--merge-schedule", default="rate(1 minute)")
    p.add_argument("--write-scope", default="traffic/write")
    p.add_argument("--wait", type=int, default=300, help="seconds to wait for the windows to close")
    p.add_argument("--teardown", action="store_true", help="delete the stack and its tables at the end")
    p.add_argument(
        "--strict",
        action="store_true",
        help="a part the emulator cannot do fails the run (MiniStack does every part)",
    )
    p.add_argument("--work-dir", help="for the city and the recorded readings (default: a temporary one, removed)")
    a = p.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

    t0 = time.time()
    run = Run(a)
    if a.emulator:
        run.out["emulator"] = a.emulator
    try:
        run.deploy()
        run.read_operations()
        run.subscribe_queue()
        run.subscribe_events()
        run.simulate()
        stack_windows = run.wait_for_windows()
        run.compare_with_replay(stack_windows)
        run.archive(stack_windows)
        run.read_alarms()
        run.read_events(stack_windows)
        run.api()
        if a.lambda_deploy:
            run.lambda_deploy()
    finally:
        if a.teardown and hasattr(run, "resources"):
            run.teardown()
        if run.own_work:
            shutil.rmtree(run.work, ignore_errors=True)
    run.out["not_checked"] = run.not_checked
    run.out["failed"] = run.failures
    run.out["seconds"] = dict(run.timings, total=round(time.time() - t0, 1))
    print(json.dumps(report(run.out)))
    return 0 if not run.failures else 1


if __name__ == "__main__":
    sys.exit(main())

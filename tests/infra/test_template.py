"""infra/template.yaml against the code, and deployed to the emulator's CloudFormation.

Run by scripts/test.d/infra.sh with the project's virtual environment:

    python tests/infra/test_template.py            (plain unittest; -v for every test's name)

`TemplateWiring` reads the template (cfn-lint's decoder, for the short-form tags) and the Rust
source (`code_facts.py`) and needs nothing else. `EmulatorDeployment` runs the SAM transform
locally (aws-sam-translator), creates the stack in the CloudFormation at `AWS_ENDPOINT_URL`
(moto_server in the test command) and checks every resource the emulator really created; it is
skipped when no endpoint is set, unless `TRAFFIC_REQUIRE_AWS=1` (the test command sets it),
in which case it fails.

What is compared with what, and which environment variables count, is written at each test.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import time
import unittest
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "infra"))

import code_facts as cf  # noqa: E402
import transform as tr  # noqa: E402

TEMPLATE = tr.load()
RESOURCES = TEMPLATE["Resources"]
GLOBAL_FUNCTION = TEMPLATE.get("Globals", {}).get("Function", {})
PARAMETERS = TEMPLATE["Parameters"]

#: Engine variables (core/src/config.rs) the template sets, from parameters, on every function
#: that reads the engine configuration: they must agree between ingest (which writes the state),
#: merge (which reads it), fault (whose store expires it) and api (which reads it live). The
#: others (digest size, top-k, Webster's constants) keep the code's defaults and are not set. The
#: plan variables must agree between merge (which stores plans) and api (which draws the plan of
#: an intersection without one).
ENGINE_SET = {
    "TRAFFIC_WINDOWS": "Windows",
    "TRAFFIC_ALLOWED_LATENESS": "AllowedLateness",
    "TRAFFIC_MAX_CLOCK_SKEW": "MaxClockSkew",
    "TRAFFIC_MIN_READING_INTERVAL": "MinReadingInterval",
    "TRAFFIC_IDLE_TIMEOUT": "IdleTimeout",
    "TRAFFIC_SILENCE_AFTER": "SilenceAfter",
    "WEBSTER_MIN_CHANGE_S": "RetimeMinChange",
    "PLAN_MIN_GREEN_S": "PlanMinGreen",
    "PLAN_MIN_GREEN_FACTOR": "PlanMinGreenFactor",
    "PLAN_MAX_GREEN_FACTOR": "PlanMaxGreenFactor",
}
#: Variables that choose the resources (the AWS adapter's `AwsNames`): each function sets
#: exactly those its code uses, compared resource by resource.
RESOURCE_VARS = {"STATE_TABLE", "REGISTRY_TABLE", "RESULTS_TABLE", "ALARM_TOPIC_ARN", "READINGS_STREAM", "EVENT_BUS_NAME", "ARCHIVE_BUCKET"}
#: Read by main.rs but deliberately not set in AWS: a write token would be a plain-text secret
#: in the function's configuration; the HTTP API's JWT authorizer guards writes instead.
NEVER_SET = {"TRAFFIC_API_TOKEN"}

#: What Lambda's Kinesis event source mapping calls with the function's role (Lambda developer
#: guide, "Process Amazon Kinesis Data Streams records with Lambda"; SubscribeToShard only for
#: enhanced fan-out consumers, not used here). No KMS permission: the stream is encrypted with
#: the AWS managed key alias/aws/kinesis, whose key policy lets the account use it via Kinesis.
KINESIS_MAPPING_ACTIONS = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
}
LOG_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents"}
#: What Lambda's X-Ray daemon calls with the role's credentials when the function's `Tracing` is
#: `Active` (AWSXrayWriteOnlyAccess, less the sampling rules: Lambda samples, not the code).
#: X-Ray's write actions take no resource ARN: the one grant on "*" a role may hold.
XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}

FUNCTIONS = cf.functions()
ADAPTER = cf.Adapter()
#: Notes printed after the tests (what the emulator skipped, documented actions not granted).
REPORT: dict[str, object] = {}


# --- Template helpers ---------------------------------------------------------------------------


def target(value) -> str | None:
    """The logical id a {"Ref": X} or {"Fn::GetAtt": [X, attr]} points at, or an
    {"Fn::Sub": "${X.Arn}/folder/*"} (objects under a folder of a bucket X) names."""
    if isinstance(value, dict):
        sub = value.get("Fn::Sub")
        if isinstance(sub, str):
            m = re.fullmatch(r"\$\{([A-Za-z0-9]+)\.Arn\}/[a-z_]+/\*", sub)
            return m.group(1) if m else None
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            ga = value["Fn::GetAtt"]
            return ga[0] if isinstance(ga, list) else ga.split(".")[0]
    return None


def function_props(lid: str) -> dict:
    """A function's properties with the Globals merged in (as SAM merges them)."""
    props = dict(GLOBAL_FUNCTION)
    props.update(RESOURCES[lid]["Properties"])
    return props


def template_functions() -> dict[str, str]:
    """binary name -> logical id of its AWS::Serverless::Function."""
    out = {}
    for lid, binary in tr.binaries(TEMPLATE).items():
        if binary in out:
            raise AssertionError(f"binary {binary} is built by both {out[binary]} and {lid}")
        out[binary] = lid
    return out


def as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def resource_env_targets() -> dict[str, str]:
    """Resource variable -> the logical id it names, the same in every function."""
    seen: dict[str, str] = {}
    for lid in template_functions().values():
        for var, value in function_props(lid).get("Environment", {}).get("Variables", {}).items():
            if var in RESOURCE_VARS:
                t = target(value)
                if t is None:
                    raise AssertionError(f"{lid}: {var} must be a Ref to a resource, not {value!r}")
                if seen.setdefault(var, t) != t:
                    raise AssertionError(f"{var} names {seen[var]} in one function and {t} in {lid}")
    return seen


def kinesis_events(lid: str) -> list[dict]:
    return [e["Properties"] for e in function_props(lid).get("Events", {}).values() if e["Type"] == "Kinesis"]


def role_grants(lid: str) -> set[tuple[str, str]]:
    """(resource key, action) pairs the function's role allows. Resource keys: the resource
    variable naming the resource (STATE_TABLE, ...), or "log-group", "stream", "failure-queue"
    for the function's own log group, the stream it is mapped to and its on-failure queue, or
    "xray" for X-Ray's write actions (on "*", and only those)."""
    props = function_props(lid)
    role_lid = target(props["Role"])
    role = RESOURCES[role_lid]
    own = {}
    log_group = target(props.get("LoggingConfig", {}).get("LogGroup"))
    if log_group:
        own[log_group] = "log-group"
    for ev in kinesis_events(lid):
        own[target(ev["Stream"])] = "stream"
        own[target(ev["DestinationConfig"]["OnFailure"]["Destination"])] = "failure-queue"
    env_targets = {v: k for k, v in resource_env_targets().items()}
    grants = set()
    for policy in role["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
                raise AssertionError(f"{role_lid}: only plain Allow statements, got {st}")
            if "Condition" in st:
                leading_keys(role_lid, st)  # the one condition allowed
            for res in as_list(st["Resource"]):
                if res == "*":
                    actions = set(as_list(st["Action"]))
                    if not actions <= XRAY_ACTIONS or "Condition" in st:
                        raise AssertionError(f"{role_lid}: only X-Ray's write actions on '*', got {st}")
                    grants |= {("xray", a) for a in actions}
                    continue
                t = target(res)
                if t is None:
                    raise AssertionError(f"{role_lid}: resource {res!r} is not one of the stack's resources")
                key = own.get(t) or env_targets.get(t)
                if key is None:
                    raise AssertionError(f"{role_lid} grants on {t}, which {lid} neither names nor owns")
                for action in as_list(st["Action"]):
                    if "*" in action:
                        raise AssertionError(f"{role_lid}: wildcard action {action}")
                    grants.add((key, action))
    return grants


def leading_keys(role_lid: str, st: dict) -> list[str]:
    """The partition key patterns of a statement's `ForAllValues:StringLike` condition on
    `dynamodb:LeadingKeys`, the only condition a role may use (on DynamoDB actions only)."""
    cond = st["Condition"]
    keys = cond.get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys") if len(cond) == 1 else None
    if not isinstance(keys, list) or len(cond["ForAllValues:StringLike"]) != 1 or not keys:
        raise AssertionError(f"{role_lid}: a condition must be ForAllValues:StringLike on dynamodb:LeadingKeys alone, got {cond}")
    if not all(a.startswith("dynamodb:") for a in as_list(st["Action"])):
        raise AssertionError(f"{role_lid}: a LeadingKeys condition on non-DynamoDB actions: {st}")
    return keys


def role_key_grants(lid: str) -> tuple[set[tuple[str, str, str]], set[tuple[str, str]]]:
    """What the function's role grants on the stack's tables: (table variable, action, key
    pattern) of the statements narrowed by partition key, and (table variable, action) of
    those that are not."""
    role_lid = target(function_props(lid)["Role"])
    env_targets = {v: k for k, v in resource_env_targets().items()}
    keyed, unkeyed = set(), set()
    for policy in RESOURCES[role_lid]["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            for res in as_list(st["Resource"]):
                var = env_targets.get(target(res))
                if not var or not var.endswith("_TABLE"):
                    continue
                for action in as_list(st["Action"]):
                    if "Condition" in st:
                        keyed |= {(var, action, p) for p in leading_keys(role_lid, st)}
                    else:
                        unkeyed.add((var, action))
    return keyed, unkeyed


def allowed(lid: str, var: str, action: str, pk: str) -> bool:
    """Whether the function's role lets `action` reach the item(s) of partition key `pk` in
    table `var` (IAM's StringLike: `*` any run of characters, `?` one)."""
    import fnmatch

    keyed, unkeyed = role_key_grants(lid)
    if (var, action) in unkeyed:
        return True
    return any(v == var and a == action and fnmatch.fnmatchcase(pk, p) for v, a, p in keyed)


#: Partition keys a function's code can name on a path the function never takes: the alarm
#: closing shared by the API's repair (which writes repair orders) and the recoveries of
#: `fault` and `merge` (which never do). Not granted to them.
NEVER_REACHED = {("fault", "repairs"), ("merge", "repairs")}


# --- docs/aws.md --------------------------------------------------------------------------------


def documented_needs() -> dict[str, dict[str, set[str]]] | None:
    """Per function, resource key -> IAM actions, as docs/aws.md's "API actions per function"
    table lists them; None when the file or the table is not there."""
    path = ROOT / "docs/aws.md"
    if not path.exists():
        return None
    return parse_aws_md(path.read_text())


def parse_aws_md(text: str) -> dict[str, dict[str, set[str]]] | None:
    """Reads the Markdown table whose header has an "IAM actions" column. A row whose first
    cell names a function (`**ingest**`) starts that function; rows with an empty first cell
    continue it; other first cells (`traffic simulate`) are not functions. The resource cell
    gives the key: a resource variable (`STATE_TABLE`, ...) or "stream" for the readings stream
    (whose row also names the on-failure queue's `sqs:SendMessage`, key "failure-queue"). "as
    ingest" copies ingest's row; a parenthesised "(+ ... if ...)" is conditional and left out."""
    names = set(FUNCTIONS)
    out: dict[str, dict[str, set[str]]] = {}
    iam_col = None
    current = None
    for line in text.splitlines():
        if not line.lstrip().startswith("|"):
            iam_col = None if not line.strip() else iam_col
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if iam_col is None:
            lowered = [c.lower() for c in cells]
            if "iam actions" in lowered:
                iam_col = lowered.index("iam actions")
            continue
        if set("".join(cells)) <= set("-: "):
            continue
        first = cells[0].strip("`* ")
        if first:
            current = first if first in names else None
        if current is None or len(cells) <= iam_col:
            continue
        resource, actions_cell = cells[1], cells[iam_col]
        var = re.search(r"\b(" + "|".join(sorted(RESOURCE_VARS)) + r")\b", resource)
        key = var.group(1) if var else ("stream" if "stream" in resource.lower() else resource)
        grants = out.setdefault(current, {})
        if actions_cell.strip().lower().startswith("as "):
            other = actions_cell.strip()[3:].strip("` *")
            for k, v in out.get(other, {}).items():
                if k in ("stream", "failure-queue"):
                    grants.setdefault(k, set()).update(v)
            continue
        actions_cell = re.sub(r"\(\+[^)]*\)", "", actions_cell)
        for action in re.findall(r"\b((?:dynamodb|sns|kinesis|sqs|logs|events|s3):[A-Za-z]+)", actions_cell):
            k = "failure-queue" if action.startswith("sqs:") and key == "stream" else key
            grants.setdefault(k, set()).add(action)
    return out or None


def documented_readers() -> dict[str, set[str]] | None:
    """docs/aws.md's configuration table: resource variable -> the functions that read it
    (the names in its "read by" cell, outside parentheses)."""
    path = ROOT / "docs/aws.md"
    if not path.exists():
        return None
    out: dict[str, set[str]] = {}
    col = None
    for line in path.read_text().splitlines():
        if not line.lstrip().startswith("|"):
            col = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if col is None:
            lowered = [c.lower() for c in cells]
            col = lowered.index("read by") if "read by" in lowered else None
            continue
        var = cells[0].strip("` ")
        if var in RESOURCE_VARS and len(cells) > col:
            cell = re.sub(r"\([^)]*\)", "", cells[col])
            out[var] = set(re.findall(r"\b[a-z]+\b", cell)) & set(FUNCTIONS)
    return out or None


def documented_code_needs(doc: dict[str, set[str]]) -> set[tuple[str, str]]:
    """The documented (resource variable, action) pairs of the stack's tables and topic."""
    return {(k, a) for k, acts in doc.items() if k in RESOURCE_VARS for a in acts}


# --- The HTTP API's routes ------------------------------------------------------------------------


def code_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the api crate's router (the `api_routes!` table)."""
    text = (ROOT / "functions/api/src/lib.rs").read_text()
    block = text[text.index("api_routes! {") :]
    routes = re.findall(r'^\s*(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS)\s+"([^"]+)"\s*=>', block, re.M)
    if not routes:
        raise cf.CodeShapeError("functions/api/src/lib.rs: no api_routes! table")
    return routes


def documented_protected_routes() -> set[tuple[str, str]]:
    """Routes that functions/api/openapi.json marks as needing authorization."""
    doc = json.loads((ROOT / "functions/api/openapi.json").read_text())
    return {
        (m.upper(), p)
        for p, ops in doc["paths"].items()
        for m, op in ops.items()
        if isinstance(op, dict) and op.get("security")
    }


def sub_target(value) -> str | None:
    """The logical id in a `!Sub integrations/${X}` route target."""
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        m = re.fullmatch(r"integrations/\$\{([A-Za-z0-9]+)\}", value["Fn::Sub"])
        return m.group(1) if m else None
    return None


def http_routes(lid: str) -> list[dict]:
    """The HTTP API routes that reach function `lid`: every AWS::ApiGatewayV2::Route whose
    target is a Lambda proxy integration of it, as {"Method", "Path", "Api", "Integration",
    "AuthorizationType", "AuthorizerId", "AuthorizationScopes"} (ids are logical ids)."""
    out = []
    for rid, r in RESOURCES.items():
        if r["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        p = r["Properties"]
        integration = sub_target(p.get("Target"))
        if integration is None:
            raise AssertionError(f"{rid}: Target must be !Sub integrations/${{Integration}}, not {p.get('Target')!r}")
        ip = RESOURCES[integration]["Properties"]
        if target(ip["IntegrationUri"]) != lid:
            continue
        method, path = p["RouteKey"].split(" ", 1)
        out.append(
            {
                "Id": rid,
                "Method": method,
                "Path": path,
                "Api": target(p["ApiId"]),
                "Integration": integration,
                "AuthorizationType": p.get("AuthorizationType", "NONE"),
                "AuthorizerId": target(p.get("AuthorizerId")),
                "AuthorizationScopes": p.get("AuthorizationScopes", []),
            }
        )
    return out


def route_regex(path: str) -> re.Pattern:
    """API Gateway's matching of a route path: {x} is one segment, {x+} the rest (at least one)."""
    out = ""
    for seg in path.strip("/").split("/"):
        if not seg:
            continue
        if re.fullmatch(r"\{[^}]+\+\}", seg):
            out += "/.+"
        elif re.fullmatch(r"\{[^}]+\}", seg):
            out += "/[^/]+"
        else:
            out += "/" + re.escape(seg)
    return re.compile("^" + (out or "/") + "$")


def select_route(routes: list[dict], method: str, path: str) -> dict | None:
    """The route an HTTP API picks: the most specific path (fewest variables, greedy last),
    then an explicit method over ANY (API Gateway developer guide, "Routing API requests")."""
    candidates = []
    for r in routes:
        if not route_regex(r["Path"]).match(path):
            continue
        if r["Method"].upper() not in (method, "ANY"):
            continue
        greedy = "+}" in r["Path"]
        variables = r["Path"].count("{")
        candidates.append(((greedy, variables, r["Method"].upper() == "ANY"), r))
    return min(candidates, key=lambda c: c[0])[1] if candidates else None


def concrete(path: str) -> str:
    """A request path for a route path: every {variable} replaced by a sample value."""
    return re.sub(r"\{[^}]+\}", "x1", path)


def route_authorizer(route: dict) -> str | None:
    """The logical id of the route's authorizer, None for a public route."""
    if route["AuthorizationType"] == "NONE":
        return None
    return route["AuthorizerId"]


# --- Static checks ------------------------------------------------------------------------------


class TemplateWiring(unittest.TestCase):
    """The template wires exactly what the code uses."""

    maxDiff = None

    def test_every_function_crate_has_its_resource_built_by_cargo_lambda(self):
        crates = {f.binary for f in FUNCTIONS.values()}
        self.assertEqual(set(template_functions()), crates, "function binaries vs template resources")
        for binary, lid in template_functions().items():
            props = function_props(lid)
            meta = RESOURCES[lid]["Metadata"]
            with self.subTest(function=binary):
                self.assertEqual(meta["BuildMethod"], "rust-cargolambda")
                self.assertEqual(props["Runtime"], "provided.al2023")
                self.assertEqual(props["Handler"], "bootstrap")
                self.assertEqual(props["Architectures"], ["arm64"])
                code = (ROOT / "infra" / props["CodeUri"]).resolve()
                self.assertEqual(code, ROOT, "CodeUri must be the workspace root")
                self.assertIn("[workspace]", (code / "Cargo.toml").read_text())

    def test_sam_build_finds_every_binary_at_the_workspace_root(self):
        """`sam build` runs `cargo lambda build --release --arm64 --bin <Binary>` in CodeUri. At
        a workspace root that is itself a package, cargo looks for `--bin` only in the default
        members, so each function's package must be one (`default-members` in Cargo.toml)."""
        found = cf.cargo_default_member_binaries()
        if found is None:
            self.skipTest("cargo is not on PATH")
        missing = sorted(set(template_functions()) - found)
        self.assertEqual(
            missing,
            [],
            "`cargo build --bin NAME` at the workspace root does not find these binaries, so "
            "`sam build` fails for them: add their crates to [workspace] default-members in the "
            'root Cargo.toml, e.g. default-members = [".", "functions/ingest", "functions/fault", '
            '"functions/merge", "functions/api"]',
        )

    def test_each_function_sets_exactly_the_resources_its_code_uses(self):
        documented = documented_needs()
        for binary, lid in template_functions().items():
            fn = FUNCTIONS[binary]
            env = function_props(lid).get("Environment", {}).get("Variables", {})
            code = cf.code_needs(fn, ADAPTER).resources()
            with self.subTest(function=binary):
                self.assertEqual(set(env) & RESOURCE_VARS, code, f"{binary}: resource variables vs code")
                if documented and binary in documented:
                    self.assertEqual({k for k in documented[binary] if k in RESOURCE_VARS}, code, f"{binary}: docs/aws.md vs code")
                self.assertTrue(code <= ADAPTER.env_vars, "the adapter reads these variables")
                readers = documented_readers()
                if readers is not None:
                    doc = {var for var, fns in readers.items() if binary in fns}
                    self.assertEqual(doc, code, f"{binary}: docs/aws.md's configuration table vs code")

    def test_each_function_sets_no_variable_its_code_does_not_read(self):
        """Every variable set is read: the store choice and log filter (functions/shared), the
        adapter's names, the engine variables in ENGINE_SET (when the function reads the engine
        configuration, directly or through the DynamoDB wiring), or main.rs's own."""
        shared = cf.shared_env_vars()
        engine = cf.engine_variables()
        self.assertTrue(set(ENGINE_SET) <= engine, "ENGINE_SET names variables core/src/config.rs reads")
        for binary, lid in template_functions().items():
            fn = FUNCTIONS[binary]
            env = function_props(lid).get("Environment", {}).get("Variables", {})
            readable = shared | ADAPTER.env_vars | fn.env_vars | (engine if fn.reads_engine_config else set())
            with self.subTest(function=binary):
                self.assertEqual(set(env) - readable, set(), f"{binary} sets variables nothing reads")
                self.assertEqual(set(env) & NEVER_SET, set())
                self.assertEqual(env.get("TRAFFIC_STORE"), "dynamodb")
                self.assertIn("dynamodb", cf.store_backends(), "the configuration accepts TRAFFIC_STORE=dynamodb")
                if fn.reads_engine_config:
                    set_engine = {k: v for k, v in env.items() if k in engine}
                    self.assertEqual(set_engine, {k: {"Ref": p} for k, p in ENGINE_SET.items()})
                    for p in ENGINE_SET.values():
                        self.assertIn(p, PARAMETERS)
                else:
                    self.assertEqual(set(env) & engine, set())

    def test_each_role_allows_only_what_its_function_calls(self):
        """The role's (resource, action) pairs are exactly: the code's DynamoDB and SNS calls
        (per docs/aws.md when it lists them, which must then agree with the code), writing to
        its own log group, and for a stream consumer reading the stream and sending to its
        on-failure queue."""
        documented = documented_needs()
        roles = {}
        for binary, lid in template_functions().items():
            fn = FUNCTIONS[binary]
            code = cf.code_needs(fn, ADAPTER)
            expected = set(code.grants) | {("log-group", a) for a in LOG_ACTIONS}
            if function_props(lid).get("Tracing") == "Active":
                expected |= {("xray", a) for a in XRAY_ACTIONS}
            if fn.event == "kinesis":
                # The stream it is mapped to is the stream it names (READINGS_STREAM: its
                # shards' hash key ranges): one resource, granted as the mapping's.
                expected = {("stream" if r == "READINGS_STREAM" else r, a) for r, a in expected}
                expected |= {("stream", a) for a in KINESIS_MAPPING_ACTIONS}
                expected |= {("failure-queue", "sqs:SendMessage")}
            with self.subTest(function=binary):
                if documented is not None:
                    self.assertIn(binary, documented, "docs/aws.md lists every function")
                    doc = documented[binary]
                    self.assertEqual(documented_code_needs(doc), code.grants, f"{binary}: docs/aws.md vs code")
                    # The stream's and the queue's actions: the template grants no more than the
                    # documentation lists (it may grant less: see KINESIS_MAPPING_ACTIONS).
                    for key in ("stream", "failure-queue"):
                        granted = {a for k, a in expected if k == key}
                        self.assertLessEqual(granted, doc.get(key, set()), f"{binary}: {key} vs docs/aws.md")
                        extra = doc.get(key, set()) - granted
                        if extra:
                            REPORT.setdefault("docs/aws.md lists, the template does not grant", set()).update(extra)
                    if "logs:CreateLogGroup" in (ROOT / "docs/aws.md").read_text():
                        # The template creates every log group, so no function creates one.
                        REPORT.setdefault("docs/aws.md lists, the template does not grant", set()).add("logs:CreateLogGroup")
                else:
                    REPORT["docs/aws.md"] = "missing: roles compared with the code only"
                self.assertEqual(role_grants(lid), expected, f"{binary}: role vs code")
                role = RESOURCES[target(function_props(lid)["Role"])]
                self.assertEqual(role["Type"], "AWS::IAM::Role")
                self.assertNotIn("ManagedPolicyArns", role["Properties"])
                trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
                self.assertEqual(
                    [(s["Effect"], s["Principal"], s["Action"]) for s in trust],
                    [("Allow", {"Service": "lambda.amazonaws.com"}, "sts:AssumeRole")],
                )
                self.assertNotIn("Policies", function_props(lid), "one explicit role, no SAM policies")
                roles.setdefault(target(function_props(lid)["Role"]), []).append(binary)
        self.assertTrue(all(len(v) == 1 for v in roles.values()), f"one role per function: {roles}")

    #: (function, table, action, key) that the per-method reading over-approximates and that
    #: must stay denied: ingest's commit reads the merge's marks (`merge`, a ConditionCheck) in
    #: the same transaction as its writes, but never writes them.
    OVER_READ = {
        ("ingest", "STATE_TABLE", "dynamodb:PutItem", "merge"),
        ("ingest", "STATE_TABLE", "dynamodb:BatchWriteItem", "merge"),
    }

    def test_each_role_reaches_only_the_partition_keys_its_code_builds(self):
        """Every DynamoDB statement is narrowed by `dynamodb:LeadingKeys` (but a Scan, which
        names no key), and per table and action the role grants only key patterns that the
        code's port methods build with that action (code_facts.KeyReader: literals, constants
        and format strings of the adapter's key builders), while every pattern and every action
        a method uses is granted at least once: a new key prefix without its policy fails here."""
        keys = cf.KeyReader()
        for binary, lid in template_functions().items():
            fn = FUNCTIONS[binary]
            per_method = cf.code_key_grants(fn, ADAPTER, keys)
            possible = set().union(*per_method.values()) if per_method else set()
            keyed, unkeyed = role_key_grants(lid)
            with self.subTest(function=binary):
                self.assertLessEqual({a for _, a in unkeyed}, {"dynamodb:Scan"}, "only Scan goes without a LeadingKeys condition")
                self.assertEqual(keyed - possible, set(), f"{binary} is granted keys or actions its code never uses on them")
                for method, triples in per_method.items():
                    for var, action, pattern in triples:
                        if (binary, pattern) in NEVER_REACHED or (binary, var, action, pattern) in self.OVER_READ:
                            continue
                        if action == "dynamodb:Scan":
                            continue
                        # Each action on each key it may reach: a transaction's Put of a key
                        # only updated elsewhere is AccessDenied on AWS, and moto never says so.
                        self.assertIn((var, action, pattern), keyed, f"{method} may {action} {pattern!r} in {var}: no statement of {binary}'s role grants it")

    def test_ingest_cannot_write_the_merges_state_nor_fault_an_intersection(self):
        """The issue's two cases, by IAM's own matching: ingest may read the merge's marks
        and make its commit conditional on them but not overwrite the merge state or lease;
        fault may read the intersections but not change one; nobody but the merge takes the
        lease."""
        fns = template_functions()
        writes = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"]
        self.assertTrue(allowed(fns["ingest"], "STATE_TABLE", "dynamodb:ConditionCheckItem", "merge"))
        self.assertTrue(allowed(fns["ingest"], "STATE_TABLE", "dynamodb:PutItem", "shard#shardId-000000000000"))
        for action in writes:
            with self.subTest(action=action):
                self.assertFalse(allowed(fns["ingest"], "STATE_TABLE", action, "merge"))
                self.assertFalse(allowed(fns["fault"], "REGISTRY_TABLE", action, "intersections"))
                self.assertFalse(allowed(fns["api"], "STATE_TABLE", action, "merge"))
                self.assertFalse(allowed(fns["fault"], "STATE_TABLE", action, "merge"))
        self.assertTrue(allowed(fns["fault"], "REGISTRY_TABLE", "dynamodb:Query", "intersections"))
        self.assertTrue(allowed(fns["merge"], "STATE_TABLE", "dynamodb:PutItem", "merge"))
        self.assertTrue(allowed(fns["merge"], "REGISTRY_TABLE", "dynamodb:UpdateItem", "intersections"))

    def test_stream_consumers_have_the_mapping_settings(self):
        for binary, lid in template_functions().items():
            fn = FUNCTIONS[binary]
            events = kinesis_events(lid)
            with self.subTest(function=binary):
                if fn.event != "kinesis":
                    self.assertEqual(events, [])
                    continue
                self.assertEqual(len(events), 1)
                ev = events[0]
                self.assertEqual(RESOURCES[target(ev["Stream"])]["Type"], "AWS::Kinesis::Stream")
                for key in ("BatchSize", "MaximumBatchingWindowInSeconds", "MaximumRecordAgeInSeconds", "MaximumRetryAttempts"):
                    self.assertIn(target(ev[key]), PARAMETERS, f"{key} is a parameter")
                self.assertEqual(ev["FunctionResponseTypes"], ["ReportBatchItemFailures"])
                self.assertIs(ev["BisectBatchOnFunctionError"], True)
                self.assertEqual(ev["ParallelizationFactor"], 1, "one batch per shard at a time")
                self.assertIn(ev["StartingPosition"], ("TRIM_HORIZON", "LATEST"))
                dest = ev["DestinationConfig"]["OnFailure"]
                self.assertEqual(dest["Type"], "SQS")
                queue = target(dest["Destination"])
                self.assertEqual(RESOURCES[queue]["Type"], "AWS::SQS::Queue")
                alarms = [
                    r["Properties"]
                    for r in RESOURCES.values()
                    if r["Type"] == "AWS::CloudWatch::Alarm"
                    and r["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
                    and any(target(d["Value"]) == queue for d in r["Properties"].get("Dimensions", []))
                ]
                self.assertEqual(len(alarms), 1, f"one alarm on {queue}")
                self.assertEqual([target(a) for a in alarms[0]["AlarmActions"]], ["OperationsTopic"])
                self.assertEqual(alarms[0]["ComparisonOperator"], "GreaterThanThreshold")
                self.assertEqual(alarms[0]["Threshold"], 0)
                defaults = {k: PARAMETERS[target(ev[k])]["Default"] for k in ("BatchSize", "MaximumBatchingWindowInSeconds")}
                self.assertLessEqual(defaults["BatchSize"], 10000)
                self.assertLessEqual(defaults["MaximumBatchingWindowInSeconds"], 300)

    def test_merge_runs_alone_on_a_schedule(self):
        for binary, lid in template_functions().items():
            if FUNCTIONS[binary].event != "eventbridge":
                continue
            props = function_props(lid)
            events = list(props["Events"].values())
            with self.subTest(function=binary):
                self.assertEqual([e["Type"] for e in events], ["Schedule"])
                self.assertEqual(target(events[0]["Properties"]["Schedule"]), "MergeSchedule")
                rc = props["ReservedConcurrentExecutions"]
                self.assertEqual(rc, {"Fn::If": ["ReserveMerge", {"Ref": "MergeReservedConcurrency"}, {"Ref": "AWS::NoValue"}]})
                self.assertEqual(PARAMETERS["MergeReservedConcurrency"]["Default"], 1)
                # TRAFFIC_PROVISIONAL's parameter offers exactly the values the configuration parses.
                # Its names are the `("name", Self::Variant)` pairs `Provisional::from_str` looks up.
                config = (ROOT / "functions/shared/src/config.rs").read_text()
                from_str = config[config.index("impl std::str::FromStr for Provisional") :]
                from_str = from_str[: from_str.index("\n}\n")]
                parsed = re.findall(r'\("([a-z]+)",\s*Self::', from_str)
                self.assertEqual(len(parsed), 3, from_str)
                env = props["Environment"]["Variables"]
                if "TRAFFIC_PROVISIONAL" in env:
                    param = PARAMETERS[target(env["TRAFFIC_PROVISIONAL"])]
                    self.assertEqual(set(param["AllowedValues"]), set(parsed))
                    self.assertIn(param["Default"], parsed)
                rate = re.fullmatch(r"rate\((\d+) minutes?\)", PARAMETERS["MergeSchedule"]["Default"])
                self.assertIsNotNone(rate)
                self.assertLess(props["Timeout"], int(rate.group(1)) * 60, "a run ends before the next starts")

    def test_mutating_routes_need_the_authorizer_and_reads_do_not(self):
        """Every route of the api crate's router, as a request: the HTTP API route that would
        take it sends it to the api function, with an authorizer (and a write scope) exactly
        when the method changes something; openapi.json agrees on which those are."""
        protected_doc = documented_protected_routes()
        for binary, lid in template_functions().items():
            if FUNCTIONS[binary].event != "http":
                continue
            routes = http_routes(lid)
            for r in routes:
                # docs/api.md: no ANY or $default route, so that no read can meet the authorizer.
                self.assertNotEqual(r["Method"].upper(), "ANY")
                self.assertNotEqual(r["Path"], "$default")
                self.assertIn(r["AuthorizationType"], ("NONE", "JWT"), r["Id"])
            for method, path in code_routes():
                mutating = method not in ("GET", "HEAD", "OPTIONS")
                with self.subTest(route=f"{method} {path}"):
                    self.assertEqual((method, path) in protected_doc, mutating, "openapi.json security")
                    chosen = select_route(routes, method, concrete(path))
                    self.assertIsNotNone(chosen, "no HTTP API route takes this request")
                    auth = route_authorizer(chosen)
                    if mutating:
                        self.assertIsNotNone(auth, "a write reaches the function without an authorizer")
                        self.assertEqual(RESOURCES[auth]["Type"], "AWS::ApiGatewayV2::Authorizer")
                        self.assertTrue(chosen["AuthorizationScopes"], "a write needs a scope")
                        self.assertEqual(chosen["AuthorizationScopes"], [{"Ref": "AuthWriteScope"}])
                    else:
                        self.assertIsNone(auth, "a read should be public")
            apis = {r["Api"] for r in routes}
            self.assertEqual(len(apis), 1, "one HTTP API")
            api = apis.pop()
            self.assertEqual(RESOURCES[api]["Type"], "AWS::ApiGatewayV2::Api")
            self.assertEqual(RESOURCES[api]["Properties"]["ProtocolType"], "HTTP")
            # Routes as resources, not an imported OpenAPI body (which some emulators ignore).
            self.assertNotIn("Body", RESOURCES[api]["Properties"])
            self.assertNotIn("BodyS3Location", RESOURCES[api]["Properties"])
            for integration in {r["Integration"] for r in routes}:
                ip = RESOURCES[integration]["Properties"]
                self.assertEqual(target(ip["ApiId"]), api)
                self.assertEqual(ip["IntegrationType"], "AWS_PROXY")
                self.assertEqual(ip["PayloadFormatVersion"], "2.0", "lambda_http's apigw_http event")
            # The $default stage: a named stage would prefix rawPath, which the router does not expect.
            stages = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::ApiGatewayV2::Stage" and target(r["Properties"]["ApiId"]) == api]
            self.assertEqual([(s["StageName"], s.get("AutoDeploy")) for s in stages], [("$default", True)])
            authorizers = {r["AuthorizerId"] for r in routes if r["AuthorizerId"]}
            for name in authorizers:
                a = RESOURCES[name]["Properties"]
                self.assertEqual(target(a["ApiId"]), api)
                self.assertEqual(a["AuthorizerType"], "JWT")
                jwt = a["JwtConfiguration"]
                self.assertTrue(jwt["Issuer"] and jwt["Audience"], name)
                self.assertEqual(a["IdentitySource"], ["$request.header.Authorization"])

    def test_the_api_function_is_invoked_only_by_its_http_api(self):
        """API Gateway may invoke the api function (from its own API only), and the function
        has no SAM HttpApi events left (those would put the routes in an OpenAPI body)."""
        for binary, lid in template_functions().items():
            if FUNCTIONS[binary].event != "http":
                continue
            with self.subTest(function=binary):
                self.assertEqual(function_props(lid).get("Events", {}), {})
                api = {r["Api"] for r in http_routes(lid)}.pop()
                perms = [
                    r["Properties"]
                    for r in RESOURCES.values()
                    if r["Type"] == "AWS::Lambda::Permission" and target(r["Properties"]["FunctionName"]) == lid
                ]
                self.assertEqual(len(perms), 1)
                self.assertEqual(perms[0]["Principal"], "apigateway.amazonaws.com")
                self.assertEqual(perms[0]["Action"], "lambda:InvokeFunction")
                self.assertIn("${" + api + "}/*", perms[0]["SourceArn"]["Fn::Sub"])
        self.assertFalse([lid for lid, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::HttpApi"])
        # No function URL and no other resource-based permission: a direct caller could forge
        # the authorizer context the api trusts (docs/aws.md, "Who may invoke the api").
        self.assertFalse([lid for lid, r in RESOURCES.items() if r["Type"] == "AWS::Lambda::Url"])
        for lid, r in RESOURCES.items():
            if r["Type"] == "AWS::Lambda::Permission":
                self.assertEqual(r["Properties"]["Principal"], "apigateway.amazonaws.com", lid)
                self.assertIn("SourceArn", r["Properties"], lid)

    def test_an_emulator_gets_the_hosts_architecture_and_aws_gets_arm64(self):
        """infra/transform.py's --architecture (scripts/deployed-e2e.sh: an emulator runs the
        functions on its own host) changes only the functions' architecture."""
        aws = tr.packaged(TEMPLATE, "code-bucket")
        host = tr.packaged(TEMPLATE, "code-bucket", architecture="x86_64")
        self.assertEqual(aws["Globals"]["Function"]["Architectures"], ["arm64"])
        self.assertEqual(host["Globals"]["Function"]["Architectures"], ["x86_64"])
        for lid in tr.binaries(TEMPLATE):
            self.assertNotIn("Architectures", host["Resources"][lid]["Properties"])
        aws["Globals"]["Function"].pop("Architectures")
        host["Globals"]["Function"].pop("Architectures")
        self.assertEqual(aws, host)
        with self.assertRaises(ValueError):
            tr.packaged(TEMPLATE, "code-bucket", architecture="sparc")

    def test_tables_match_the_adapter(self):
        setup = (ROOT / "adapters/aws/src/setup.rs").read_text()
        ttl_attr = re.search(r'attribute_name\("([a-z_]+)"\)', setup)
        self.assertIsNotNone(ttl_attr, "setup.rs enables TTL on an attribute")
        keys = re.findall(r'attr\("([a-z]+)"\)', setup)
        for var, lid in resource_env_targets().items():
            res = RESOURCES[lid]
            if res["Type"] != "AWS::DynamoDB::Table":
                continue
            p = res["Properties"]
            with self.subTest(table=lid):
                self.assertEqual(p["BillingMode"], "PAY_PER_REQUEST")
                self.assertEqual(
                    [(k["AttributeName"], k["KeyType"]) for k in p["KeySchema"]],
                    [(keys[0], "HASH"), (keys[1], "RANGE")],
                )
                self.assertEqual({(a["AttributeName"], a["AttributeType"]) for a in p["AttributeDefinitions"]}, {(k, "S") for k in keys})
                self.assertIs(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"], True)
                self.assertEqual(p["TimeToLiveSpecification"], {"AttributeName": ttl_attr.group(1), "Enabled": True})
                self.assertEqual(res.get("DeletionPolicy"), "Retain")
                self.assertEqual(res.get("UpdateReplacePolicy"), "Retain")
        self.assertEqual(
            {v for v in resource_env_targets() if v.endswith("_TABLE")},
            {"STATE_TABLE", "REGISTRY_TABLE", "RESULTS_TABLE"},
        )

    def test_closed_alarms_expire_after_the_alarm_retention_parameter(self):
        """AlarmRetentionDays reaches every function that closes alarms as ALARM_RETENTION_DAYS,
        its default is the code's, and the adapter's closing sets the TTL attribute the
        registry table expires items by."""
        param = PARAMETERS["AlarmRetentionDays"]
        code_default = re.search(r"retention_ms:\s*(\d+)\s*\*\s*DAY_MS", (ROOT / "core/src/alarm.rs").read_text())
        self.assertIsNotNone(code_default, "core/src/alarm.rs: the default retention")
        self.assertEqual(param["Default"], int(code_default.group(1)))
        self.assertEqual((param["MinValue"], param["MaxValue"]), (1, 3650))
        setting = {}
        for binary, lid in template_functions().items():
            env = function_props(lid).get("Environment", {}).get("Variables", {})
            if "ALARM_RETENTION_DAYS" in env:
                setting[binary] = target(env["ALARM_RETENTION_DAYS"])
        self.assertEqual(setting, {"api": "AlarmRetentionDays", "fault": "AlarmRetentionDays", "merge": "AlarmRetentionDays"})
        ttl = RESOURCES["RegistryTable"]["Properties"]["TimeToLiveSpecification"]["AttributeName"]
        adapter = ROOT / "adapters/aws/src"
        lamps = "\n".join(p.read_text() for p in [adapter / "lamps.rs", *sorted((adapter / "lamps").rglob("*.rs"))])
        # The closing's update expression, built as `SET repaired_at = :at` + `, <ttl> = :exp`.
        self.assertIn('"SET repaired_at = :at"', lamps)
        self.assertIn(f'", {ttl} = :exp"', lamps)

    def test_stream_is_encrypted_and_sized_by_a_parameter(self):
        p = RESOURCES["ReadingsStream"]["Properties"]
        self.assertEqual(p["StreamEncryption"], {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"})
        self.assertEqual(p["StreamModeDetails"], {"StreamMode": {"Ref": "StreamMode"}})
        self.assertEqual(p["ShardCount"], {"Fn::If": ["IsOnDemand", {"Ref": "AWS::NoValue"}, {"Ref": "StreamShardCount"}]})
        self.assertEqual(TEMPLATE["Conditions"]["IsOnDemand"], {"Fn::Equals": [{"Ref": "StreamMode"}, "ON_DEMAND"]})

    def test_alarm_topic_has_optional_email_and_sms_subscriptions(self):
        subs = {
            r["Properties"]["Protocol"]: r
            for r in RESOURCES.values()
            if r["Type"] == "AWS::SNS::Subscription" and target(r["Properties"]["TopicArn"]) == "AlarmTopic"
        }
        self.assertEqual(set(subs), {"email", "sms"})
        for proto, param in (("email", "AlarmEmail"), ("sms", "AlarmPhoneNumber")):
            r = subs[proto]
            self.assertEqual(target(r["Properties"]["TopicArn"]), "AlarmTopic")
            self.assertEqual(target(r["Properties"]["Endpoint"]), param)
            self.assertEqual(PARAMETERS[param]["Default"], "")
            cond = TEMPLATE["Conditions"][r["Condition"]]
            self.assertEqual(cond, {"Fn::Not": [{"Fn::Equals": [{"Ref": param}, ""]}]})
        self.assertEqual(resource_env_targets()["ALARM_TOPIC_ARN"], "AlarmTopic")

    def test_every_function_logs_to_its_own_group_with_retention(self):
        groups = []
        for binary, lid in template_functions().items():
            props = function_props(lid)
            group = target(props["LoggingConfig"]["LogGroup"])
            groups.append(group)
            with self.subTest(function=binary):
                self.assertEqual(RESOURCES[group]["Type"], "AWS::Logs::LogGroup")
                self.assertEqual(target(RESOURCES[group]["Properties"]["RetentionInDays"]), "LogRetentionDays")
        self.assertEqual(len(set(groups)), len(groups))
        for lid, r in RESOURCES.items():
            if r["Type"] == "AWS::Logs::LogGroup":
                self.assertIn("RetentionInDays", r["Properties"], lid)

    def test_every_function_is_traced_by_x_ray_and_its_role_may_send_the_segments(self):
        """`Tracing: Active` for every function (Globals, none overriding it): Lambda samples
        the invocations and runs the daemon the step subsegments go to
        (functions/shared/src/xray.rs). The roles are the template's, so SAM adds no X-Ray
        policy: each must grant X-Ray's two write actions itself, and nothing else on "*"."""
        self.assertEqual(GLOBAL_FUNCTION.get("Tracing"), "Active")
        for binary, lid in template_functions().items():
            with self.subTest(function=binary):
                self.assertNotIn("Tracing", RESOURCES[lid]["Properties"])
                grants = role_grants(lid)
                self.assertEqual({a for k, a in grants if k == "xray"}, XRAY_ACTIONS)
        self.assertIn("## Tracing", (ROOT / "docs/aws.md").read_text())

    def test_sizes_and_timeouts(self):
        """Memory and timeouts from the benchmarks (see the template's comment and the README):
        merge gets a full vCPU (1,769 MB or more), the api stays under the HTTP API's 30 s."""
        sizes = {b: function_props(l) for b, l in template_functions().items()}
        self.assertGreaterEqual(sizes["merge"]["MemorySize"], 1769)
        self.assertLessEqual(sizes["api"]["Timeout"], 29)
        for b, p in sizes.items():
            with self.subTest(function=b):
                self.assertTrue(128 <= p["MemorySize"] <= 10240)
                self.assertTrue(1 <= p["Timeout"] <= 900)

    def test_cargo_lambda_metadata_gives_each_function_what_the_template_does(self):
        """`cargo lambda deploy` (scripts/lambda-deploy.sh) updates a stack's function from the
        function's [package.metadata.lambda.deploy]: a memory, timeout or tracing other than the
        template's would change the deployed function, an environment without merge_env would
        replace the stack's (its table, stream and topic names) with the few variables the
        metadata sets, and a role there would be one account's. So: the template's memory,
        timeout and tracing (Globals: Active), merge_env, no role, and only variables the
        template sets to the same literal in every stack."""
        import tomllib

        for binary, lid in template_functions().items():
            props = function_props(lid)
            manifest = tomllib.loads((ROOT / "functions" / binary / "Cargo.toml").read_text())
            deploy = manifest.get("package", {}).get("metadata", {}).get("lambda", {}).get("deploy")
            with self.subTest(function=binary):
                self.assertIsNotNone(deploy, f"functions/{binary}/Cargo.toml has no [package.metadata.lambda.deploy]")
                self.assertEqual(deploy.get("memory"), props["MemorySize"], "memory vs MemorySize")
                self.assertEqual(deploy.get("timeout"), props["Timeout"], "timeout vs Timeout")
                tracing = props.get("Tracing", "PassThrough")
                self.assertEqual(str(deploy.get("tracing", "")).lower(), tracing.lower(), "tracing vs Tracing")
                self.assertIs(deploy.get("merge_env"), True, "merge_env keeps the stack's environment")
                self.assertFalse({"role", "iam_role"} & set(deploy), "the role is the stack's, passed at deploy time")
                template_env = props["Environment"]["Variables"]
                for var, value in deploy.get("env", {}).items():
                    self.assertEqual(template_env.get(var), value, f"{var}: the template's literal value")

    def test_outputs_name_what_the_tools_need(self):
        out = TEMPLATE["Outputs"]
        want = {
            "ApiUrl": "HttpApi",
            "ReadingsStreamName": "ReadingsStream",
            "StateTableName": "StateTable",
            "RegistryTableName": "RegistryTable",
            "ResultsTableName": "ResultsTable",
            "AlarmTopicArn": "AlarmTopic",
            "OperationsTopicArn": "OperationsTopic",
            "OperationsDashboardName": "OperationsDashboard",
            "ResultsBusName": "ResultsBus",
            "ResultsBusArn": "ResultsBus",
        }
        for key, lid in want.items():
            with self.subTest(output=key):
                value = out[key]["Value"]
                if key == "ApiUrl":
                    self.assertIn("${HttpApi}", value["Fn::Sub"])
                else:
                    self.assertEqual(target(value), lid)


# --- The archive: Firehose, Glue, Athena ---------------------------------------------------------


def reading_fields() -> list[str]:
    """The reading contract's JSON fields, from the example in core/src/reading.rs's module doc."""
    doc = (ROOT / "core/src/reading.rs").read_text()
    example = doc.split("```json", 1)[1].split("```", 1)[0]
    text = " ".join(line.removeprefix("//!").strip() for line in example.splitlines())
    return list(json.loads(text).keys())


def named_queries() -> dict[str, dict]:
    return {r["Properties"]["Name"]: r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::Athena::NamedQuery"}


class ArchiveTemplate(unittest.TestCase):
    """The archive: the stream to S3 as Parquet by Firehose, the Glue table it converts against,
    the Athena workgroup and its named queries, the buckets' lifecycles."""

    maxDiff = None

    def firehose(self) -> dict:
        (props,) = [r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::KinesisFirehose::DeliveryStream"]
        return props

    def table(self) -> dict:
        return RESOURCES["ReadingsArchiveTable"]["Properties"]["TableInput"]

    def test_the_merge_output_tables_have_the_columns_the_merge_writes(self):
        """Each Glue table of the merge's outputs declares the columns, in order and with the
        types, of its `Table` in adapters/tables/src/lib.rs, projects `dt` by day, and sits
        under its own folder of the archive bucket, where the merge's role may write."""
        code = (ROOT / "adapters/tables/src/lib.rs").read_text()
        tables = {}
        for name, body in re.findall(r'name:\s*"([a-z_]+)",\s*columns:\s*&\[(.*?)\],\s*\}', code, re.S):
            tables[name] = re.findall(r'\("([a-z_]+)",\s*"([a-z<>]+)"\)', body)
        self.assertEqual(
            set(tables),
            {"windows", "window_intersections", "window_rankings", "window_plans", "plan_changes", "alarm_events"},
        )
        glue = {
            r["Properties"]["TableInput"]["Name"]: r["Properties"]["TableInput"]
            for r in RESOURCES.values()
            if r["Type"] == "AWS::Glue::Table"
        }
        for name, columns in tables.items():
            with self.subTest(table=name):
                t = glue[name]
                got = [(c["Name"], c["Type"]) for c in t["StorageDescriptor"]["Columns"]]
                self.assertEqual(got, columns)
                self.assertEqual([k["Name"] for k in t["PartitionKeys"]], ["dt"])
                self.assertEqual(t["Parameters"]["projection.dt.type"], "date")
                self.assertEqual(
                    t["Parameters"]["storage.location.template"],
                    {"Fn::Sub": f"s3://${{ArchiveBucket}}/{name}/dt=${{!dt}}/"},
                )
        merge_role = RESOURCES["MergeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        (archive,) = [st for st in merge_role if st.get("Sid") == "ArchiveOutputs"]
        self.assertEqual(
            sorted(r["Fn::Sub"] for r in archive["Resource"]),
            sorted(f"${{ArchiveBucket.Arn}}/{n}/*" for n in tables),
        )

    def test_the_named_queries_are_the_files_of_queries(self):
        files = {f.stem: f.read_text() for f in sorted((ROOT / "queries").glob("*.sql"))}
        self.assertGreaterEqual(len(files), 4)
        queries = named_queries()
        self.assertEqual(set(queries), set(files))
        for name, props in queries.items():
            with self.subTest(query=name):
                self.assertEqual(props["QueryString"], files[name])
                self.assertEqual(target(props["Database"]), "ArchiveDatabase")
                self.assertEqual(target(props["WorkGroup"]), "ArchiveWorkGroup")
                # Its header names each `?` in order, with an example value in ('...').
                header = " ".join(l for l in files[name].splitlines() if l.startswith("--"))
                examples = re.findall(r"\('([^']*)'\)", header.split("Parameters:", 1)[1])
                body = "\n".join(l for l in files[name].splitlines() if not l.startswith("--"))
                self.assertEqual(body.count("?"), len(examples), "placeholders vs parameters named")

    def test_firehose_reads_the_stream_and_writes_parquet_against_the_readings_table(self):
        fh = self.firehose()
        self.assertEqual(fh["DeliveryStreamType"], "KinesisStreamAsSource")
        self.assertEqual(target(fh["KinesisStreamSourceConfiguration"]["KinesisStreamARN"]), "ReadingsStream")
        dest = fh["ExtendedS3DestinationConfiguration"]
        self.assertEqual(target(dest["BucketARN"]), "ArchiveBucket")
        conv = dest["DataFormatConversionConfiguration"]
        self.assertTrue(conv["Enabled"])
        self.assertIn("OpenXJsonSerDe", conv["InputFormatConfiguration"]["Deserializer"])
        self.assertIn("ParquetSerDe", conv["OutputFormatConfiguration"]["Serializer"])
        self.assertEqual(target(conv["SchemaConfiguration"]["TableName"]), "ReadingsArchiveTable")
        self.assertEqual(target(conv["SchemaConfiguration"]["DatabaseName"]), "ArchiveDatabase")
        # Firehose refuses format conversion with buffers under 64 MB.
        self.assertGreaterEqual(dest["BufferingHints"]["SizeInMBs"], 64)
        self.assertEqual(target(dest["BufferingHints"]["IntervalInSeconds"]), "ArchiveBufferSeconds")

    def test_the_archive_is_partitioned_by_the_readings_day_where_the_table_projects_it(self):
        dest = self.firehose()["ExtendedS3DestinationConfiguration"]
        self.assertTrue(dest["DynamicPartitioningConfiguration"]["Enabled"])
        (extraction,) = [p for p in dest["ProcessingConfiguration"]["Processors"] if p["Type"] == "MetadataExtraction"]
        query = {p["ParameterName"]: p["ParameterValue"] for p in extraction["Parameters"]}["MetadataExtractionQuery"]
        self.assertEqual(query, "{dt: .ts[0:10]}")
        self.assertEqual(dest["Prefix"], "readings/dt=!{partitionKeyFromQuery:dt}/")
        table = self.table()
        params = table["Parameters"]
        self.assertEqual(params["projection.enabled"], "true")
        self.assertEqual((params["projection.dt.type"], params["projection.dt.format"]), ("date", "yyyy-MM-dd"))
        self.assertEqual(params["storage.location.template"]["Fn::Sub"], "s3://${ArchiveBucket}/readings/dt=${!dt}/")
        self.assertEqual([k["Name"] for k in table["PartitionKeys"]], ["dt"])
        # Errors go elsewhere, where the table never reads.
        self.assertFalse(dest["ErrorOutputPrefix"].startswith("readings/"))

    def test_the_readings_table_has_a_column_for_every_field_of_the_reading_contract(self):
        columns = {c["Name"]: c["Type"] for c in self.table()["StorageDescriptor"]["Columns"]}
        self.assertEqual(list(columns), reading_fields())
        self.assertEqual(columns["ts"], "timestamp")
        self.assertEqual(columns["lamps"], "struct<red:string,yellow:string,green:string>")

    def test_firehose_may_do_only_what_the_delivery_needs(self):
        """Its role's (resource, action) pairs: the stream's reads, the table's schema, the
        archive's writes, its log; nothing else, and no wildcard."""
        role = RESOURCES[target(self.firehose()["KinesisStreamSourceConfiguration"]["RoleARN"])]
        self.assertEqual(role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"], {"Service": "firehose.amazonaws.com"})
        grants = set()
        for policy in role["Properties"]["Policies"]:
            for st in policy["PolicyDocument"]["Statement"]:
                self.assertEqual(st["Effect"], "Allow")
                for res in as_list(st["Resource"]):
                    text = res.get("Fn::Sub", "") if isinstance(res, dict) else res
                    key = target(res) or next(
                        (k for k in ("table/", "database/", ":catalog", "${ArchiveBucket.Arn}") if k in text), None
                    )
                    self.assertIsNotNone(key, f"a grant on {res}")
                    grants |= {(key, a) for a in as_list(st["Action"])}
        self.assertFalse([a for _, a in grants if "*" in a])
        reads = {"kinesis:DescribeStream", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:ListShards"}
        schema = {"glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"}
        writes = {"s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject"}
        self.assertEqual(
            grants,
            {("ReadingsStream", a) for a in reads}
            | {(k, a) for k in ("table/", "database/", ":catalog") for a in schema}
            | {(k, a) for k in ("ArchiveBucket", "${ArchiveBucket.Arn}") for a in writes}
            | {("ArchiveDeliveryLogGroup", "logs:PutLogEvents")},
        )

    def test_the_workgroup_enforces_its_results_location_and_scan_limit(self):
        wg = RESOURCES["ArchiveWorkGroup"]["Properties"]["WorkGroupConfiguration"]
        self.assertTrue(wg["EnforceWorkGroupConfiguration"])
        self.assertEqual(target(wg["BytesScannedCutoffPerQuery"]), "AthenaScanLimitBytes")
        self.assertIn("${QueryResultsBucket}", wg["ResultConfiguration"]["OutputLocation"]["Fn::Sub"])

    def test_the_archive_moves_to_cheaper_tiers_by_parameters_and_query_results_expire(self):
        rules = RESOURCES["ArchiveBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        transitions = {t["StorageClass"]: target(t["TransitionInDays"]) for r in rules for t in r.get("Transitions", [])}
        self.assertEqual(transitions, {"STANDARD_IA": "ArchiveInfrequentAccessDays", "GLACIER_IR": "ArchiveColdDays"})
        self.assertEqual(RESOURCES["ArchiveBucket"]["DeletionPolicy"], "Retain")
        (rule,) = RESOURCES["QueryResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        self.assertEqual(target(rule["ExpirationInDays"]), "QueryResultsDays")
        for lid in ("ArchiveBucket", "QueryResultsBucket"):
            with self.subTest(bucket=lid):
                block = RESOURCES[lid]["Properties"]["PublicAccessBlockConfiguration"]
                self.assertTrue(all(block.values()))

    def test_outputs_name_the_archive(self):
        out = TEMPLATE["Outputs"]
        for key, lid in {
            "ArchiveBucketName": "ArchiveBucket",
            "ArchiveDatabaseName": "ArchiveDatabase",
            "ArchiveWorkGroupName": "ArchiveWorkGroup",
            "ReadingsArchiveName": "ReadingsArchive",
        }.items():
            with self.subTest(output=key):
                self.assertEqual(target(out[key]["Value"]), lid)


# --- Operations: alarms and the dashboard --------------------------------------------------------


def alarms() -> dict[str, dict]:
    """Logical id -> properties of every AWS::CloudWatch::Alarm."""
    return {lid: r["Properties"] for lid, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def alarm_on(namespace: str, metric: str, dims: dict[str, str]) -> list[str]:
    """The alarms on `metric` in `namespace` whose dimensions point at `dims` (name -> the
    logical id, parameter or literal value it must name)."""
    out = []
    for lid, a in alarms().items():
        ns = a.get("Namespace")
        ns = PARAMETERS[target(ns)]["Default"] if target(ns) in PARAMETERS else ns
        got = {d["Name"]: target(d["Value"]) or d["Value"] for d in a.get("Dimensions", [])}
        if ns == namespace and a.get("MetricName") == metric and got == dims:
            out.append(lid)
    return out


def duration_minutes(text: str) -> float:
    """`15m`, `1h`, `30s` (a Windows or lateness value) in minutes."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", text)
    if not m:
        raise AssertionError(f"not a duration: {text!r}")
    return int(m.group(1)) * {"ms": 1 / 60000, "s": 1 / 60, "m": 1, "h": 60, "d": 1440}[m.group(2)]


def schedule_minutes(expr: str) -> float:
    """An EventBridge `rate(N unit)` expression's period in minutes."""
    m = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expr)
    if not m:
        raise AssertionError(f"the freshness check understands rate() schedules only, not {expr!r}")
    return int(m.group(1)) * {"minute": 1, "hour": 60, "day": 1440}[m.group(2).rstrip("s")]


#: What the dashboard's `${...}` become: parameters their defaults, anything else a placeholder
#: (a stack name, a region, a resource's name) that is valid inside a JSON string.
def substitute(text: str) -> str:
    def value(m: re.Match) -> str:
        name = m.group(1)
        if name in PARAMETERS:
            return str(PARAMETERS[name]["Default"])
        if name.startswith("AWS::"):
            return {"AWS::Region": "eu-south-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}.get(name, "STACK")
        lid = name.split(".")[0]
        if lid not in RESOURCES:
            raise AssertionError(f"${{{name}}} names no parameter or resource")
        return f"PH-{name.replace('.', '-')}"

    return re.sub(r"\$\{([A-Za-z0-9:.]+)\}", value, text)


def dashboard() -> dict:
    [lid] = [lid for lid, r in RESOURCES.items() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = RESOURCES[lid]["Properties"]["DashboardBody"]
    return json.loads(substitute(body["Fn::Sub"] if isinstance(body, dict) else body))


def dashboard_metrics() -> list[tuple[str, str, dict[str, str], dict]]:
    """(namespace, metric, dimensions, options) of every metric row of every metric widget,
    with the "." shorthand (same as the row above) resolved."""
    out = []
    for w in dashboard()["widgets"]:
        if w["type"] != "metric":
            continue
        prev: list = []
        for row in w["properties"]["metrics"]:
            opts = row[-1] if isinstance(row[-1], dict) else {}
            items = [x for x in row if not isinstance(x, dict)]
            items = [prev[i] if x == "." and i < len(prev) else x for i, x in enumerate(items)]
            prev = items
            dims = dict(zip(items[2::2], items[3::2]))
            out.append((items[0], items[1], dims, opts))
    return out


class OperationsAlarms(unittest.TestCase):
    """The operators' alarms and dashboard (docs/aws.md, "Alarms")."""

    NAMESPACE = PARAMETERS["MetricsNamespace"]["Default"]

    def test_every_alarm_notifies_the_operations_topic_when_it_fires_and_recovers(self):
        self.assertEqual(RESOURCES["OperationsTopic"]["Type"], "AWS::SNS::Topic")
        for lid, a in alarms().items():
            with self.subTest(alarm=lid):
                self.assertEqual([target(x) for x in a["AlarmActions"]], ["OperationsTopic"])
                self.assertEqual([target(x) for x in a["OKActions"]], ["OperationsTopic"])
                self.assertNotIn("InsufficientDataActions", a)
                self.assertGreater(len(a.get("AlarmDescription", "")), 40, "says what happened and what to do")
                self.assertIn(a.get("TreatMissingData"), ("notBreaching", "breaching"), "chosen, not left to the default")
                if a["TreatMissingData"] == "breaching":
                    self.assertEqual(lid, "ResultsFreshnessAlarm", "only silence of the results is a fault")
                self.assertRegex(a["AlarmName"]["Fn::Sub"], r"^\$\{AWS::StackName\}-[a-z0-9-]+$")
        names = [a["AlarmName"]["Fn::Sub"] for a in alarms().values()]
        self.assertEqual(len(set(names)), len(names))

    def test_the_operations_topic_has_an_optional_email_apart_from_the_lamp_alarms(self):
        subs = [r for r in RESOURCES.values() if r["Type"] == "AWS::SNS::Subscription" and target(r["Properties"]["TopicArn"]) == "OperationsTopic"]
        self.assertEqual(len(subs), 1)
        self.assertEqual(subs[0]["Properties"]["Protocol"], "email")
        self.assertEqual(target(subs[0]["Properties"]["Endpoint"]), "OperationsEmail")
        self.assertEqual(PARAMETERS["OperationsEmail"]["Default"], "")
        self.assertEqual(TEMPLATE["Conditions"][subs[0]["Condition"]], {"Fn::Not": [{"Fn::Equals": [{"Ref": "OperationsEmail"}, ""]}]})
        for binary, lid in template_functions().items():
            env = function_props(lid)["Environment"]["Variables"]
            self.assertNotEqual(target(env.get("ALARM_TOPIC_ARN")), "OperationsTopic", binary)

    def test_the_alarms_an_operator_must_act_on_exist(self):
        want: dict[str, list[str]] = {}
        for binary, lid in template_functions().items():
            for metric in ("Errors", "Throttles"):
                want[f"{binary} {metric}"] = alarm_on("AWS/Lambda", metric, {"FunctionName": lid})
            if FUNCTIONS[binary].event == "kinesis":
                want[f"{binary} IteratorAge"] = alarm_on("AWS/Lambda", "IteratorAge", {"FunctionName": lid})
        self.assertEqual({b for b, f in FUNCTIONS.items() if f.event == "kinesis"}, {"ingest", "fault"})
        want["api 5xx"] = alarm_on("AWS/ApiGateway", "5xx", {"ApiId": "HttpApi"})
        for lid, r in RESOURCES.items():
            if r["Type"] == "AWS::DynamoDB::Table":
                for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
                    want[f"{lid} {metric}"] = alarm_on("AWS/DynamoDB", metric, {"TableName": lid})
        want["lamp alarm delivery"] = alarm_on("AWS/SNS", "NumberOfNotificationsFailed", {"TopicName": "AlarmTopic"})
        want["freshness"] = alarm_on(self.NAMESPACE, "WindowsClosed", {"Function": "merge"})
        for queue in ("IngestFailureQueue", "FaultFailureQueue"):
            want[queue] = alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": queue})
        for what, found in want.items():
            with self.subTest(alarm=what):
                self.assertEqual(len(found), 1, f"one alarm on {what}")
        self.assertEqual(sorted(lid for f in want.values() for lid in f), sorted(alarms()), "no alarm beyond these")
        self.assertEqual(RESOURCES["LampAlarmDeliveryAlarm"]["Properties"]["Dimensions"][0]["Value"], {"Fn::GetAtt": ["AlarmTopic", "TopicName"]})

    def test_the_freshness_alarm_spans_twice_the_shortest_window_plus_the_merge_period(self):
        shortest = min(duration_minutes(w) for w in PARAMETERS["Windows"]["Default"].split(","))
        period = schedule_minutes(PARAMETERS["MergeSchedule"]["Default"])
        self.assertEqual(PARAMETERS["FreshnessMinutes"]["Default"], 2 * shortest + period)
        self.assertIn("twice the shortest of Windows", PARAMETERS["FreshnessMinutes"]["Description"])
        a = RESOURCES["ResultsFreshnessAlarm"]["Properties"]
        # One-minute periods, every one of FreshnessMinutes of them breaching: no window closed
        # in a sliding span of that many minutes.
        self.assertEqual(a["Period"], 60)
        self.assertEqual(a["EvaluationPeriods"], {"Ref": "FreshnessMinutes"})
        self.assertEqual(a["DatapointsToAlarm"], {"Ref": "FreshnessMinutes"})
        self.assertLessEqual(PARAMETERS["FreshnessMinutes"]["MaxValue"] * a["Period"], 86400, "CloudWatch evaluates at most a day")
        self.assertEqual((a["Statistic"], a["ComparisonOperator"], a["Threshold"]), ("Sum", "LessThanThreshold", 1))
        self.assertEqual(a["TreatMissingData"], "breaching")
        self.assertEqual(a["Namespace"], {"Ref": "MetricsNamespace"})
        self.assertIn("WindowsClosed", cf.emitted_metrics()["merge"])

    def test_every_function_writes_its_metrics_under_the_namespace_the_alarms_read(self):
        default = re.search(r'pub const NAMESPACE: &str = "([^"]+)"', (ROOT / "functions/shared/src/metrics.rs").read_text()).group(1)
        self.assertEqual(self.NAMESPACE, default)
        for binary, lid in template_functions().items():
            with self.subTest(function=binary):
                self.assertEqual(function_props(lid)["Environment"]["Variables"]["TRAFFIC_METRICS_NAMESPACE"], {"Ref": "MetricsNamespace"})
        for lid, a in alarms().items():
            if not str(a["Namespace"]).startswith("AWS/"):
                with self.subTest(alarm=lid):
                    self.assertEqual(a["Namespace"], {"Ref": "MetricsNamespace"})
                    dims = {d["Name"]: d["Value"] for d in a["Dimensions"]}
                    self.assertIn(a["MetricName"], cf.emitted_metrics()[dims["Function"]])

    def test_the_dashboard_is_json_and_names_only_metrics_the_functions_write(self):
        emitted = cf.emitted_metrics()
        rows = dashboard_metrics()
        self.assertTrue(rows)
        for ns, metric, dims, _ in rows:
            if ns != self.NAMESPACE:
                self.assertTrue(ns.startswith("AWS/"), ns)
                continue
            with self.subTest(metric=metric, dims=dims):
                self.assertIn(dims.get("Function"), emitted)
                self.assertIn(metric, emitted[dims["Function"]], f"{dims['Function']} writes no {metric}")
                # The api's metrics exist only by Route or by Status (docs/aws.md, "Metrics").
                want = {"Function", "Route"} if "Route" in dims else {"Function", "Status"} if dims["Function"] == "api" else {"Function"}
                self.assertEqual(set(dims), want)
        for w in dashboard()["widgets"]:
            if w["type"] == "metric":
                self.assertEqual(w["properties"]["region"], "eu-south-1")

    def test_the_dashboard_shows_throughput_lag_latencies_alarms_and_cost(self):
        rows = {(ns, m, tuple(sorted(d.items()))) for ns, m, d, _ in dashboard_metrics()}
        ns = self.NAMESPACE

        def has(namespace, metric, **dims):
            return (namespace, metric, tuple(sorted(dims.items()))) in rows

        for m in ("Accepted", "Rejected", "Late"):
            self.assertTrue(has(ns, m, Function="ingest"), m)
        for m in ("ClosedMarkLag", "RunTime", "ResultLatencyMax"):
            self.assertTrue(has(ns, m, Function="merge"), m)
        self.assertTrue(has(ns, "LatencyMax", Function="fault"))
        for lid, r in RESOURCES.items():
            if r["Type"] == "AWS::DynamoDB::Table":
                for m in ("ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits"):
                    self.assertTrue(has("AWS/DynamoDB", m, TableName=f"PH-{lid}"), f"{lid} {m}")
        for lid in template_functions().values():
            for m in ("Duration", "Invocations"):
                self.assertTrue(has("AWS/Lambda", m, FunctionName=f"PH-{lid}"), f"{lid} {m}")
        self.assertTrue(has("AWS/Kinesis", "IncomingRecords", StreamName="PH-ReadingsStream"))
        [widget] = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
        listed = sorted(a.rsplit(":", 1)[1] for a in widget["properties"]["alarms"])
        self.assertEqual(listed, sorted(substitute(a["AlarmName"]["Fn::Sub"]) for a in alarms().values()), "every alarm, by its name")
        for arn in widget["properties"]["alarms"]:
            self.assertRegex(arn, r"^arn:aws:cloudwatch:eu-south-1:123456789012:alarm:STACK-")

    def test_docs_list_every_alarm(self):
        text = (ROOT / "docs/aws.md").read_text()
        m = re.search(r"^## Alarms\n(.*?)(?=^## )", text, re.S | re.M)
        self.assertIsNotNone(m, 'docs/aws.md has an "Alarms" section')
        documented = set()
        for cell in re.findall(r"^\| (`[a-z0-9-]+`(?:, `[a-z0-9-]+`)*) \|", m.group(1), re.M):
            documented |= set(re.findall(r"`([a-z0-9-]+)`", cell))
        names = {a["AlarmName"]["Fn::Sub"].split("}-", 1)[1] for a in alarms().values()}
        self.assertEqual(documented, names)
        self.assertIn("OperationsEmail", (ROOT / "README.md").read_text())


# --- Deployed to the emulator ---------------------------------------------------------------------

#: Resource types moto 5.2.5's CloudFormation skips (it logs "No Moto CloudFormation support"
#: and still reports CREATE_COMPLETE). Their presence is not evidence of anything; the static
#: tests above are all the checking they get.
MOTO_SKIPS = {
    "AWS::ApiGatewayV2::Api",
    "AWS::ApiGatewayV2::Authorizer",
    "AWS::ApiGatewayV2::Integration",
    "AWS::ApiGatewayV2::Route",
    "AWS::ApiGatewayV2::Stage",
    "AWS::CloudWatch::Alarm",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolDomain",
    "AWS::Cognito::UserPoolResourceServer",
    "AWS::Lambda::EventInvokeConfig",
    "AWS::SNS::Subscription",
    # The archive: MiniStack creates and runs them in the deployed test (tests/deployed/e2e.py).
    "AWS::Athena::NamedQuery",
    "AWS::Athena::WorkGroup",
    "AWS::Glue::Database",
    "AWS::Glue::Table",
    "AWS::KinesisFirehose::DeliveryStream",
    "AWS::Logs::LogStream",
}
#: Properties moto accepts and drops (the resource exists, the setting reads back as moto's
#: default). Checked when the emulator reports them; otherwise noted, not failed.
MOTO_DROPS = {
    "TimeToLiveSpecification": "TimeToLiveStatus DISABLED",
    "PointInTimeRecoverySpecification": "PointInTimeRecoveryStatus DISABLED",
    "StreamEncryption": "EncryptionType NONE",
    "StreamModeDetails": "PROVISIONED, one shard",
    "Architectures": "x86_64",
    "LoggingConfig": "none",
}

REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "eu-south-1"
ENDPOINT = os.environ.get("AWS_ENDPOINT_URL")


def is_moto() -> bool:
    if os.environ.get("TRAFFIC_EMULATOR") == "moto":
        return True
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/moto-api/", timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def policy_document(doc) -> dict:
    """A role policy as returned by GetRolePolicy: a dict (boto3 decodes it), or a string of
    JSON, or (moto, for documents CloudFormation created) the repr of a Python dict."""
    if isinstance(doc, dict):
        return doc
    try:
        return json.loads(doc)
    except json.JSONDecodeError:
        import ast

        return ast.literal_eval(doc)


def evaluate_conditions(template: dict, params: dict) -> dict[str, bool]:
    """The template's conditions for these parameter values (Equals, Not, And, Or, Condition)."""

    def value(v):
        if isinstance(v, dict) and "Ref" in v:
            p = template["Parameters"][v["Ref"]]
            return str(params.get(v["Ref"], p.get("Default", "")))
        return str(v)

    def ev(c):
        (op, args), = c.items()
        if op == "Fn::Equals":
            return value(args[0]) == value(args[1])
        if op == "Fn::Not":
            return not ev(args[0])
        if op == "Fn::And":
            return all(ev(a) for a in args)
        if op == "Fn::Or":
            return any(ev(a) for a in args)
        if op == "Condition":
            return ev(template["Conditions"][args])
        raise ValueError(op)

    return {k: ev(v) for k, v in template.get("Conditions", {}).items()}


@unittest.skipUnless(
    ENDPOINT or os.environ.get("TRAFFIC_REQUIRE_AWS") == "1",
    "AWS_ENDPOINT_URL is not set (the test command starts moto_server and sets it)",
)
class EmulatorDeployment(unittest.TestCase):
    """The transformed template, created in the emulator's CloudFormation: every resource the
    emulator really creates exists with the template's settings, and the functions'
    environments and roles point at the resources that were created."""

    maxDiff = None
    STACK = "traffic-infra-test"
    PARAMS = {
        "AlarmEmail": "operator@example.com",
        "AlarmPhoneNumber": "+393331234567",
        "LogRetentionDays": "14",
    }

    @classmethod
    def setUpClass(cls):
        if not ENDPOINT:
            raise AssertionError("TRAFFIC_REQUIRE_AWS=1 but AWS_ENDPOINT_URL is not set")
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        s3 = cls.client("s3")
        bucket = "traffic-infra-test-code"
        try:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("bootstrap", "#!/bin/sh\nexit 1\n")  # never run: the emulator runs no code
        for binary in template_functions():
            s3.put_object(Bucket=bucket, Key=f"infra-test/{binary}.zip", Body=buf.getvalue())
        cls.transformed = tr.transform(tr.packaged(TEMPLATE, bucket, "infra-test/"), region=REGION)
        cls.conditions = evaluate_conditions(cls.transformed, cls.PARAMS)
        cls.stack = cls.create_stack(cls.STACK, cls.PARAMS)
        cls.moto = is_moto()

    @classmethod
    def client(cls, svc):
        import boto3

        return boto3.client(svc, region_name=REGION, endpoint_url=ENDPOINT)

    @classmethod
    def create_stack(cls, name: str, params: dict) -> dict:
        cfn = cls.client("cloudformation")
        try:
            cfn.delete_stack(StackName=name)
        except Exception:
            pass
        cfn.create_stack(
            StackName=name,
            TemplateBody=json.dumps(cls.transformed),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        deadline = time.time() + 300
        while True:
            st = cfn.describe_stacks(StackName=name)["Stacks"][0]
            if not st["StackStatus"].endswith("_IN_PROGRESS"):
                break
            if time.time() > deadline:
                raise AssertionError(f"{name}: still {st['StackStatus']}")
            time.sleep(1)
        if st["StackStatus"] != "CREATE_COMPLETE":
            events = cfn.describe_stack_events(StackName=name)["StackEvents"]
            raise AssertionError(f"{name}: {st['StackStatus']}: {[e.get('ResourceStatusReason') for e in events][:5]}")
        resources = {
            r["LogicalResourceId"]: r
            for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]
            if r.get("LogicalResourceId")
        }
        return {"stack": st, "resources": resources, "outputs": {o["OutputKey"]: o["OutputValue"] for o in st.get("Outputs", [])}}

    # -- helpers

    def physical(self, lid: str) -> str:
        return self.stack["resources"][lid]["PhysicalResourceId"]

    def resource_name(self, lid: str) -> str:
        """The name a function's variable holds for resource `lid`: its physical id, except
        for an event bus on moto, which lists none (its name comes from the stack's output)."""
        name = self.physical(lid)
        if not name and self.moto and RESOURCES[lid]["Type"] == "AWS::Events::EventBus":
            REPORT.setdefault("moto dropped (checked statically only)", set()).add("the EventBus's physical id")
            return self.stack["outputs"]["ResultsBusName"]
        return name

    def expected_resources(self) -> dict[str, str]:
        """Logical id -> type, for the transformed template's resources whose condition holds."""
        return {
            lid: r["Type"]
            for lid, r in self.transformed["Resources"].items()
            if "Condition" not in r or self.conditions[r["Condition"]]
        }

    def dropped(self, prop: str, got, want) -> None:
        """A setting the emulator may drop: equal to `want`, or (moto) noted as dropped."""
        if got == want:
            return
        if self.moto and prop in MOTO_DROPS:
            REPORT.setdefault("moto dropped (checked statically only)", set()).add(prop)
            return
        self.assertEqual(got, want, prop)

    # -- the tests

    def test_the_emulator_skipped_only_the_known_types(self):
        created = set(self.stack["resources"])
        skipped = {lid: t for lid, t in self.expected_resources().items() if lid not in created}
        types = set(skipped.values())
        REPORT["skipped resource types"] = sorted(types)
        REPORT["skipped resources"] = sorted(skipped)
        if self.moto:
            self.assertEqual(types, MOTO_SKIPS & set(self.expected_resources().values()))
        else:
            self.assertLessEqual(types, MOTO_SKIPS)

    def test_tables_exist_as_the_adapter_expects(self):
        ddb = self.client("dynamodb")
        for var, lid in resource_env_targets().items():
            if not var.endswith("_TABLE"):
                continue
            name = self.physical(lid)
            with self.subTest(table=lid):
                t = ddb.describe_table(TableName=name)["Table"]
                self.assertEqual([(k["AttributeName"], k["KeyType"]) for k in t["KeySchema"]], [("pk", "HASH"), ("sk", "RANGE")])
                self.assertEqual(t["BillingModeSummary"]["BillingMode"], "PAY_PER_REQUEST")
                ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                self.dropped("TimeToLiveSpecification", (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")), ("ENABLED", "expires_at"))
                pitr = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
                self.dropped("PointInTimeRecoverySpecification", pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"], "ENABLED")
                self.assertEqual(self.stack["outputs"][f"{lid}Name"], name)

    def test_the_stream_exists_with_its_shards(self):
        k = self.client("kinesis")
        name = self.physical("ReadingsStream")
        s = k.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        self.assertEqual(s["StreamStatus"], "ACTIVE")
        self.assertEqual(s["StreamModeDetails"]["StreamMode"], "PROVISIONED")
        self.assertEqual(s["OpenShardCount"], PARAMETERS["StreamShardCount"]["Default"])
        self.assertEqual(s["RetentionPeriodHours"], 24)
        self.dropped("StreamEncryption", (s.get("EncryptionType"), s.get("KeyId")), ("KMS", "alias/aws/kinesis"))
        self.assertEqual(self.stack["outputs"]["ReadingsStreamName"], name)

    def test_the_topic_and_the_failure_queues_exist(self):
        sns = self.client("sns")
        arn = self.physical("AlarmTopic")
        self.assertEqual(sns.get_topic_attributes(TopicArn=arn)["Attributes"]["TopicArn"], arn)
        self.assertEqual(self.stack["outputs"]["AlarmTopicArn"], arn)
        sqs = self.client("sqs")
        for lid in ("IngestFailureQueue", "FaultFailureQueue"):
            with self.subTest(queue=lid):
                a = sqs.get_queue_attributes(QueueUrl=self.physical(lid), AttributeNames=["All"])["Attributes"]
                self.assertEqual(a["MessageRetentionPeriod"], "1209600")

    def test_the_results_bus_exists_and_is_the_merges(self):
        events = self.client("events")
        name = self.stack["outputs"]["ResultsBusName"]
        bus = events.describe_event_bus(Name=name)
        self.assertEqual(bus["Name"], name)
        self.assertTrue(name.startswith(self.STACK), name)
        self.assertEqual(self.stack["outputs"]["ResultsBusArn"], bus["Arn"])
        lam = self.client("lambda")
        merge = lam.get_function(FunctionName=self.physical(template_functions()["merge"]))["Configuration"]
        self.assertEqual(merge["Environment"]["Variables"]["EVENT_BUS_NAME"], name)

    def test_functions_point_at_the_created_resources(self):
        lam = self.client("lambda")
        iam = self.client("iam")
        for binary, lid in template_functions().items():
            props = function_props(lid)
            with self.subTest(function=binary):
                c = lam.get_function(FunctionName=self.physical(lid))["Configuration"]
                self.assertEqual((c["Runtime"], c["Handler"]), ("provided.al2023", "bootstrap"))
                self.assertEqual((c["MemorySize"], c["Timeout"]), (props["MemorySize"], props["Timeout"]))
                self.dropped("Architectures", c.get("Architectures"), ["arm64"])
                self.dropped("LoggingConfig", (c.get("LoggingConfig") or {}).get("LogGroup"), self.physical(target(props["LoggingConfig"]["LogGroup"])))
                role_name = self.physical(target(props["Role"]))
                self.assertTrue(c["Role"].endswith(f"role/{role_name}"), c["Role"])
                env = c["Environment"]["Variables"]
                for var, res_lid in resource_env_targets().items():
                    if var in env:
                        self.assertEqual(env[var], self.resource_name(res_lid), var)
                self.assertEqual(set(env), set(props["Environment"]["Variables"]))
                # The role's statements resolve to the ARNs of the resources created for it.
                arns = set()
                for pol in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
                    doc = policy_document(iam.get_role_policy(RoleName=role_name, PolicyName=pol)["PolicyDocument"])
                    for st in doc["Statement"]:
                        arns |= set(as_list(st["Resource"]))
                for var in set(env) & RESOURCE_VARS:
                    name = self.resource_name(resource_env_targets()[var])
                    # A bucket's objects: `arn:aws:s3:::<bucket>/<folder>/*`.
                    self.assertTrue(any(a == name or a.endswith(f"/{name}") or a.endswith(f":{name}") or f":::{name}/" in a for a in arns), f"{var} {name} not in the role's resources {sorted(arns)}")

    def test_event_source_mappings_read_the_stream(self):
        lam = self.client("lambda")
        stream_arn = self.stack["outputs"]["ReadingsStreamArn"]
        for binary, lid in template_functions().items():
            events = kinesis_events(lid)
            maps = lam.list_event_source_mappings(FunctionName=self.physical(lid))["EventSourceMappings"]
            with self.subTest(function=binary):
                self.assertEqual(len(maps), len(events))
                if not events:
                    continue
                m, ev = maps[0], events[0]
                self.assertEqual(m["EventSourceArn"], stream_arn)
                self.assertEqual(m["BatchSize"], PARAMETERS[target(ev["BatchSize"])]["Default"])
                self.assertEqual(m["MaximumBatchingWindowInSeconds"], PARAMETERS[target(ev["MaximumBatchingWindowInSeconds"])]["Default"])
                self.assertEqual(m["MaximumRecordAgeInSeconds"], PARAMETERS["MaximumRecordAgeSeconds"]["Default"])
                self.assertEqual(m["MaximumRetryAttempts"], PARAMETERS["MaximumRetryAttempts"]["Default"])
                self.assertEqual(m["FunctionResponseTypes"], ["ReportBatchItemFailures"])
                self.assertIs(m["BisectBatchOnFunctionError"], True)
                self.assertEqual(m["ParallelizationFactor"], 1)
                queue = target(ev["DestinationConfig"]["OnFailure"]["Destination"])
                queue_arn = self.client("sqs").get_queue_attributes(QueueUrl=self.physical(queue), AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
                self.assertEqual(m["DestinationConfig"]["OnFailure"]["Destination"], queue_arn)

    def test_merge_is_scheduled_and_reserved(self):
        lam = self.client("lambda")
        events = self.client("events")
        merge = self.physical(template_functions()["merge"])
        rule = self.physical("MergeFunctionSchedule")
        self.assertEqual(events.describe_rule(Name=rule)["ScheduleExpression"], PARAMETERS["MergeSchedule"]["Default"])
        targets = events.list_targets_by_rule(Rule=rule)["Targets"]
        self.assertEqual([t["Arn"].split(":")[-1] for t in targets], [merge])
        self.assertEqual(lam.get_function(FunctionName=merge).get("Concurrency", {}).get("ReservedConcurrentExecutions"), 1)
        policy = json.loads(lam.get_policy(FunctionName=merge)["Policy"])
        self.assertEqual({s["Principal"]["Service"] for s in policy["Statement"]}, {"events.amazonaws.com"})

    def test_log_groups_keep_logs_as_long_as_asked(self):
        logs = self.client("logs")
        for lid, r in self.transformed["Resources"].items():
            if r["Type"] != "AWS::Logs::LogGroup":
                continue
            with self.subTest(group=lid):
                name = self.physical(lid)
                g = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
                self.assertEqual([(x["logGroupName"], x.get("retentionInDays")) for x in g], [(name, int(self.PARAMS["LogRetentionDays"]))])

    def test_an_on_demand_stack_without_reserved_merge(self):
        """The other branch of the conditions: an on-demand stream, no reservation, an external
        JWT issuer (no Cognito pool), no subscriptions."""
        params = {
            "StreamMode": "ON_DEMAND",
            "MergeReservedConcurrency": "0",
            "AuthIssuer": "https://issuer.example.com/",
            "AuthAudience": "traffic-api",
        }
        other = self.create_stack(self.STACK + "-on-demand", params)
        k = self.client("kinesis")
        s = k.describe_stream_summary(StreamName=other["resources"]["ReadingsStream"]["PhysicalResourceId"])["StreamDescriptionSummary"]
        self.dropped("StreamModeDetails", s["StreamModeDetails"]["StreamMode"], "ON_DEMAND")
        lam = self.client("lambda")
        merge = other["resources"][template_functions()["merge"]]["PhysicalResourceId"]
        self.assertNotIn("Concurrency", lam.get_function(FunctionName=merge))
        self.assertFalse({"UserPool", "OperatorClient"} & set(other["resources"]))
        self.assertNotIn("TokenUrl", other["outputs"])
        self.delete(self.STACK + "-on-demand", other)

    def delete(self, name: str, created: dict) -> None:
        """Deletes a stack; the tables stay (DeletionPolicy Retain) and are then deleted here."""
        cfn = self.client("cloudformation")
        cfn.delete_stack(StackName=name)
        ddb = self.client("dynamodb")
        tables = [created["resources"][lid]["PhysicalResourceId"] for lid in ("StateTable", "RegistryTable", "ResultsTable")]
        for t in tables:
            ddb.describe_table(TableName=t)  # retained
            ddb.delete_table(TableName=t)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "stack", None):
            cls.client("cloudformation").delete_stack(StackName=cls.STACK)
            ddb = cls.client("dynamodb")
            for lid in ("StateTable", "RegistryTable", "ResultsTable"):
                try:
                    ddb.delete_table(TableName=cls.stack["resources"][lid]["PhysicalResourceId"])
                except Exception:
                    pass


def report() -> None:
    if not REPORT:
        return
    print("\n-- emulator deployment")
    for k, v in REPORT.items():
        print(f"   {k}: {', '.join(sorted(v)) if isinstance(v, (set, list)) else v}")


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2 if "-v" in sys.argv else 1)
    report()
    sys.exit(0 if prog.result.wasSuccessful() else 1)

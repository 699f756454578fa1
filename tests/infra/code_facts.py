"""What the Rust code says each Lambda function needs, read from the source (no build).

The template test (`test_template.py`) compares `infra/template.yaml` with these facts, so that
a change in the code that the template does not follow (a new table access, a new environment
variable, a new function crate) fails the test suite.

The reading is deliberately simple: regular expressions and brace matching over the source
text, no Rust parser. It relies on the project's conventions, which it checks as it goes (it
raises `CodeShapeError` when something it expects is not found, rather than guessing):

- a function is a crate `functions/<name>/` with `src/main.rs` (`functions/shared` is not one);
- handlers reach the ports through fields named `state`, `registry`, `lamps`, `publisher`,
  `results`, `events`, `stats`, `stream` (the fields of `traffic_ports::Ports`), and only the
  methods of the matching trait in `ports/src` count;
- the AWS adapters implement the traits in `adapters/aws/src/**/*.rs` as `impl <Trait> for
  DynamoStore` / `impl AlarmPublisher for SnsPublisher` / `impl ResultEvents for
  EventBridgePublisher` / `impl StreamShards for KinesisShards`, name their table as
  `Table::State`,
  `Table::Registry` or `Table::Results`, and call the SDK as `.<operation>()` builders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class CodeShapeError(AssertionError):
    """The code is not shaped as this reader expects; fix the reader or the code."""


# --- Rust source scanning ---------------------------------------------------------------------


def strip_comments_and_strings(text: str, keep_strings: bool = False) -> str:
    """The text with comments removed and string literals replaced by `""` (same line count),
    so that braces and calls inside them do not count. With `keep_strings`, a literal keeps its
    text, its braces turned into `\x01` and `\x02` (so that they still do not count): what
    the partition keys are read from."""

    def literal(body: str) -> str:
        if not keep_strings:
            return '""' + "\n" * body.count("\n")
        return '"' + body.replace("{", "\x01").replace("}", "\x02") + '"'

    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("\n" * text.count("\n", i, j))
            i = j
            continue
        m = re.match(r'r(#*)"', text[i:]) if c == "r" and (i == 0 or not text[i - 1].isalnum() and text[i - 1] != "_") else None
        if m:
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            body = text[i + len(m.group(0)) : j if j >= 0 else n]
            j = n if j < 0 else j + len(end)
            out.append(literal(body))
            i = j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(literal(text[i + 1 : j]))
            i = j + 1
            continue
        if c == "'" and i + 2 < n and text[i + 2] == "'" and text[i + 1] in "{}\"":
            out.append("' '")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def block_end(text: str, open_brace: int) -> int:
    """Index just past the brace that closes the one at `open_brace`."""
    depth = 0
    for i in range(open_brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise CodeShapeError("unbalanced braces")


FN_RE = re.compile(r"\bfn\s+([a-z_][a-z0-9_]*)\b")


def functions_in(text: str) -> dict[str, str]:
    """Every `fn name(...) ... { body }` in `text` (already stripped): name -> body. A name
    defined twice keeps both bodies, concatenated."""
    found: dict[str, str] = {}
    for m in FN_RE.finditer(text):
        brace = text.find("{", m.end())
        semi = text.find(";", m.end())
        if brace < 0 or (0 <= semi < brace):
            continue  # a declaration without a body (trait item)
        body = text[brace : block_end(text, brace)]
        found[m.group(1)] = found.get(m.group(1), "") + body
    return found


IMPL_RE = re.compile(r"\bimpl(?:<[^>]*>)?\s+(?:([A-Za-z_][A-Za-z0-9_:]*)\s+for\s+)?([A-Za-z_][A-Za-z0-9_]*)\b[^{;]*\{")


TRAIT_RE = re.compile(r"\btrait\s+([A-Za-z_][A-Za-z0-9_]*)\b[^{;]*\{")


def provided_methods(root: Path) -> dict[tuple[str, str], str]:
    """(trait, method) -> body of every method a trait under `root` provides (written in the
    trait itself, over the methods each implementation writes)."""
    out: dict[tuple[str, str], str] = {}
    for path in sorted(root.rglob("*.rs")):
        text = read(path)
        for m in TRAIT_RE.finditer(text):
            start = m.end() - 1
            for name, body in functions_in(text[start + 1 : block_end(text, start)]).items():
                out[(m.group(1), name)] = body
    return out


def impl_blocks(text: str):
    """(trait or None, type, block text) for every `impl` block in `text` (stripped)."""
    for m in IMPL_RE.finditer(text):
        start = m.end() - 1
        trait = m.group(1).split("::")[-1] if m.group(1) else None
        yield trait, m.group(2), text[start : block_end(text, start)]


def read(path: Path, keep_strings: bool = False) -> str:
    return strip_comments_and_strings(path.read_text(), keep_strings)


# --- Ports ------------------------------------------------------------------------------------

#: The fields of `Ports` and the trait each one holds.
PORT_FIELDS = {
    "state": "StateStore",
    "registry": "Registry",
    "lamps": "LampStore",
    "publisher": "AlarmPublisher",
    "results": "ResultStore",
    "events": "ResultEvents",
    "stats": "StatsStore",
    "stream": "StreamShards",
    "archive": "OutputArchive",
}


def port_traits() -> dict[str, set[str]]:
    """trait -> its method names, from the files of `ports/src`."""
    text = "\n".join(read(p) for p in sorted((ROOT / "ports/src").rglob("*.rs")))
    traits: dict[str, set[str]] = {}
    for m in re.finditer(r"\bpub\s+trait\s+([A-Za-z_]+)[^{]*\{", text):
        body = text[m.end() - 1 : block_end(text, m.end() - 1)]
        traits[m.group(1)] = set(FN_RE.findall(body))
    missing = set(PORT_FIELDS.values()) - set(traits)
    if missing:
        raise CodeShapeError(f"ports/src has no trait {sorted(missing)}")
    return traits


# --- The AWS adapters: port method -> (resource, IAM action) ----------------------------------

#: SDK operation (the builder's snake-case name) -> IAM action. `TransactWriteItems` has no IAM
#: action of its own: IAM checks each item of the transaction as the single-item action
#: (PutItem, UpdateItem, DeleteItem, ConditionCheckItem), handled in `sdk_actions`.
SDK_TO_IAM = {
    "get_item": "dynamodb:GetItem",
    "put_item": "dynamodb:PutItem",
    "update_item": "dynamodb:UpdateItem",
    "delete_item": "dynamodb:DeleteItem",
    "query": "dynamodb:Query",
    "scan": "dynamodb:Scan",
    "batch_get_item": "dynamodb:BatchGetItem",
    "batch_write_item": "dynamodb:BatchWriteItem",
    "transact_get_items": "dynamodb:GetItem",
    "describe_table": "dynamodb:DescribeTable",
    "publish": "sns:Publish",
    "publish_batch": "sns:Publish",
    "put_record": "kinesis:PutRecord",
    "put_records": "kinesis:PutRecords",
    "list_shards": "kinesis:ListShards",
    "get_shard_iterator": "kinesis:GetShardIterator",
    "get_records": "kinesis:GetRecords",
    "put_events": "events:PutEvents",
    "put_object": "s3:PutObject",
    "get_object": "s3:GetObject",
}
TRANSACT_ITEM_TO_IAM = {
    "put": "dynamodb:PutItem",
    "update": "dynamodb:UpdateItem",
    "delete": "dynamodb:DeleteItem",
    "condition_check": "dynamodb:ConditionCheckItem",
}
#: SDK API operation names (as docs/aws.md writes them) -> IAM actions.
API_TO_IAM = {
    "GetItem": {"dynamodb:GetItem"},
    "PutItem": {"dynamodb:PutItem"},
    "UpdateItem": {"dynamodb:UpdateItem"},
    "DeleteItem": {"dynamodb:DeleteItem"},
    "Query": {"dynamodb:Query"},
    "Scan": {"dynamodb:Scan"},
    "BatchGetItem": {"dynamodb:BatchGetItem"},
    "BatchWriteItem": {"dynamodb:BatchWriteItem"},
    "ConditionCheckItem": {"dynamodb:ConditionCheckItem"},
    "DescribeTable": {"dynamodb:DescribeTable"},
    "Publish": {"sns:Publish"},
    "ListShards": {"kinesis:ListShards"},
    "GetShardIterator": {"kinesis:GetShardIterator"},
    "GetRecords": {"kinesis:GetRecords"},
    "PutEvents": {"events:PutEvents"},
    "PutObject": {"s3:PutObject"},
    "GetObject": {"s3:GetObject"},
}

TABLE_VARIANTS = {"State": "STATE_TABLE", "Registry": "REGISTRY_TABLE", "Results": "RESULTS_TABLE"}


@dataclass
class Needs:
    """What some code needs: (resource env var, IAM action) pairs."""

    grants: set[tuple[str, str]] = field(default_factory=set)

    def resources(self) -> set[str]:
        return {r for r, _ in self.grants}

    def __or__(self, other: "Needs") -> "Needs":
        return Needs(self.grants | other.grants)


def sdk_actions(body: str) -> set[str]:
    """IAM actions of the SDK calls written directly in `body`."""
    acts = set()
    for op in re.findall(r"\.\s*([a-z_]+)\(\)", body):
        if op in SDK_TO_IAM:
            acts.add(SDK_TO_IAM[op])
    if re.search(r"\.\s*transact_write_items\(\)", body) or "TransactWriteItem::builder" in body:
        for kind in re.findall(r"TransactWriteItem::builder\(\)\s*\.\s*([a-z_]+)\(", body):
            if kind in TRANSACT_ITEM_TO_IAM:
                acts.add(TRANSACT_ITEM_TO_IAM[kind])
    return acts


class Adapter:
    """The AWS adapter crate, read once."""

    def __init__(self, root: Path = ROOT / "adapters/aws/src"):
        self.inherent: dict[str, str] = {}  # DynamoStore's, EventBridgePublisher's and KinesisShards' own methods (helpers)
        self.impls: dict[tuple[str, str], str] = {}  # (trait, method) -> body
        self.impl_types: dict[str, str] = {}  # trait -> implementing type
        self.env_vars: set[str] = set()
        # Free functions (outside every impl block) by name: a transaction's actions can be
        # built by one (`fn put(..) -> TransactWriteItem`), called bare.
        self.free: dict[str, str] = {}
        # Port methods the trait provides over its required ones (`LampStore::close_alarms`
        # over `close_selected`): they need what the implementations they call need.
        self.provided = provided_methods(ROOT / "ports/src")
        if not root.is_dir():
            raise CodeShapeError(f"{root} is missing")
        for path in sorted(root.rglob("*.rs")):
            text = read(path)
            raw = path.read_text()
            self.env_vars |= set(re.findall(r'(?:lookup|get|env::var)\(\s*"([A-Z][A-Z0-9_]+)"\s*\)', raw))
            outside = text
            for _, _, block in impl_blocks(text):
                outside = outside.replace(block, "{}")
            for name, body in functions_in(outside).items():
                self.free[name] = self.free.get(name, "") + body
            for trait, ty, block in impl_blocks(text):
                if ty not in ("DynamoStore", "SnsPublisher", "KinesisShards", "EventBridgePublisher", "S3Archive"):
                    continue
                for name, body in functions_in(block[1:]).items():
                    if trait is None and ty in ("DynamoStore", "EventBridgePublisher", "KinesisShards", "S3Archive"):
                        self.inherent[name] = self.inherent.get(name, "") + body
                    elif trait in PORT_FIELDS.values():
                        self.impls[(trait, name)] = body
                        self.impl_types[trait] = ty

    def _closure(self, body: str, seen: set[str]) -> tuple[set[str], set[str]]:
        """(IAM actions, tables) of `body` and of the DynamoStore helpers it calls."""
        acts = sdk_actions(body)
        # A helper that maps every variant to its name (`fn table`) names no table itself.
        is_mapping = re.search(r"Table::[A-Za-z]+\s*=>", body) is not None
        tables = set() if is_mapping else set(re.findall(r"Table::(State|Registry|Results)\b", body))
        for name in re.findall(r"(?<![\w.:])([a-z_][a-z0-9_]*)\s*\(", body):
            if name in self.free and ("free", name) not in seen:
                seen.add(("free", name))
                a, t = self._closure(self.free[name], seen)
                acts |= a
                tables |= t
        for helper in re.findall(r"\bself\s*\.\s*([a-z_]+)\s*\(", body):
            if helper in seen:
                continue
            # A DynamoStore helper, or another port method of the store (`intersection`
            # reads through `intersection_versioned`).
            bodies = [self.inherent[helper]] if helper in self.inherent else []
            bodies += [b for (_, m), b in self.impls.items() if m == helper]
            if bodies:
                seen.add(helper)
                for b in bodies:
                    a, t = self._closure(b, seen)
                    acts |= a
                    tables |= t
        return acts, tables

    def needs(self, trait: str, method: str) -> Needs:
        """What one port method needs. A method touching several tables is taken to use each of
        its actions on each of them (an over-approximation that the adapter's layout, one table
        per port method, keeps exact)."""
        body = self.impls.get((trait, method))
        if body is None and trait in self.impl_types:
            body = self.provided.get((trait, method))
        if body is None:
            raise CodeShapeError(f"adapters/aws/src implements no {trait}::{method}")
        acts, tables = self._closure(body, set())
        if self.impl_types.get(trait) == "SnsPublisher":
            return Needs({("ALARM_TOPIC_ARN", a) for a in acts if a.startswith("sns:")})
        if self.impl_types.get(trait) == "KinesisShards":
            return Needs({("READINGS_STREAM", a) for a in acts if a.startswith("kinesis:")})
        if self.impl_types.get(trait) == "EventBridgePublisher":
            return Needs({("EVENT_BUS_NAME", a) for a in acts if a.startswith("events:")})
        if self.impl_types.get(trait) == "S3Archive":
            return Needs({("ARCHIVE_BUCKET", a) for a in acts if a.startswith("s3:")})
        acts = {a for a in acts if a.startswith("dynamodb:")}
        if acts and not tables:
            raise CodeShapeError(f"{trait}::{method} calls DynamoDB but names no Table::")
        return Needs({(TABLE_VARIANTS[t], a) for t in tables for a in acts})


# --- The functions -----------------------------------------------------------------------------


@dataclass
class Function:
    """One Lambda function crate."""

    name: str  # crate directory name, also the binary name
    binary: str
    main: str  # main.rs, stripped
    code: str  # every .rs file of the crate's src/, stripped
    event: str  # "kinesis", "eventbridge" or "http"
    port_calls: set[tuple[str, str]]  # (trait, method)
    reads_engine_config: bool
    env_vars: set[str]  # read by main.rs, directly or as a field of the configuration


def function_crates() -> list[str]:
    """Every crate under functions/ that has a src/main.rs, except `shared`."""
    return sorted(
        p.parent.parent.name
        for p in (ROOT / "functions").glob("*/src/main.rs")
        if p.parent.parent.name != "shared"
    )


def binary_name(crate: str) -> str:
    cargo = (ROOT / "functions" / crate / "Cargo.toml").read_text()
    bins = re.findall(r'\[\[bin\]\]\s*name\s*=\s*"([^"]+)"\s*path\s*=\s*"src/main.rs"', cargo)
    if len(bins) != 1:
        raise CodeShapeError(f"functions/{crate}/Cargo.toml: expected one [[bin]] at src/main.rs, found {bins}")
    return bins[0]


def shared_helpers(traits: dict[str, set[str]]) -> dict[str, set[tuple[str, str]]]:
    """Port methods called by the public helpers of functions/shared (such as `record_stats`,
    `Directory::lookup`): helper name -> (trait, method)."""
    bodies: dict[str, str] = {}
    free: set[str] = set()  # functions outside every impl block, called bare
    for path in (ROOT / "functions/shared/src").rglob("*.rs"):
        text = read(path)
        outside = text
        for _, _, block in impl_blocks(text):
            outside = outside.replace(block, "{}")
        free |= set(functions_in(outside))
        for name, body in functions_in(text).items():
            bodies[name] = bodies.get(name, "") + body
    helpers = {name: port_calls_in(body, traits) for name, body in bodies.items()}
    # A helper that calls a free one (`BatchParts::measure` calls `record_stats`) needs its
    # calls too.
    changed = True
    while changed:
        changed = False
        for name, body in bodies.items():
            for other in free:
                calls = helpers.get(other, set())
                if other != name and calls - helpers[name] and re.search(rf"(?<![\w.:]){other}\s*\(", body):
                    helpers[name] |= calls
                    changed = True
    return {name: calls for name, calls in helpers.items() if calls}


def port_calls_in(text: str, traits: dict[str, set[str]]) -> set[tuple[str, str]]:
    calls = set()
    for fld, method in re.findall(r"\b(state|registry|lamps|publisher|results|events|stats|stream|archive)\s*\.\s*([a-z_]+)\s*\(", text):
        trait = PORT_FIELDS[fld]
        if method in traits[trait]:
            calls.add((trait, method))
    return calls


CONFIG_RS = ROOT / "functions/shared/src/config.rs"


def store_backends() -> set[str]:
    """The `TRAFFIC_STORE` values the configuration accepts (`dynamodb`)."""
    raw = CONFIG_RS.read_text()
    return set(re.findall(r'store\s*!=\s*"([a-z]+)"', raw))


def config_reads_engine_config() -> bool:
    """Whether the one configuration (`Config::from_lookup`) reads the engine's variables."""
    bodies = functions_in(read(CONFIG_RS))
    return "EngineConfig::from_lookup" in bodies.get("from_lookup", "")


def config_fields() -> list[tuple[str, str]]:
    """(field of `Config`, a variable it is read from): `provisional` from `TRAFFIC_PROVISIONAL`
    (`provisional = match lookup(..)`), and `alarms` from each variable an
    `if let Some(v) = lookup("ALARM_HOLD_DOWN") { alarms = ... }` folds into it."""
    raw = CONFIG_RS.read_text()
    pairs = re.findall(r'\b([a-z_]+)\s*(?::|=)\s*(?:match\s+)?lookup\("([A-Z][A-Z0-9_]+)"\)', raw)
    folded = re.findall(r'if let Some\(\w+\) = lookup\("([A-Z][A-Z0-9_]+)"\)\s*\{\s*([a-z_]+)\s*=', raw)
    return pairs + [(field, var) for var, field in folded]


def load_function(crate: str, traits, helpers) -> Function:
    src = ROOT / "functions" / crate / "src"
    main = read(src / "main.rs")
    code = "\n".join(read(p) for p in sorted(src.rglob("*.rs")))
    # `serve_batches` (functions/shared/src/lambda.rs) serves Kinesis batches.
    if "KinesisEvent" in main or re.search(r"\bserve_batches\s*\(", main):
        event = "kinesis"
    elif "EventBridgeEvent" in main:
        event = "eventbridge"
    elif "lambda_http" in main:
        event = "http"
    else:
        raise CodeShapeError(f"functions/{crate}/src/main.rs: cannot tell which event it handles")
    calls = port_calls_in(code, traits)
    for helper, hcalls in helpers.items():
        # A call, not a function of the crate's own that has the same name (`fn measure(`).
        if re.search(rf"(?<!fn )\b{helper}\s*\(", code):
            calls |= hcalls
    # `Lambda::start` (functions/shared/src/lambda.rs) reads the configuration for main.
    starts = "Config::from_env" in main or "Lambda::start" in main
    reads_cfg = starts and config_reads_engine_config()
    raw_main = (src / "main.rs").read_text()
    env_vars = set(re.findall(r'env::var\(\s*"([A-Z][A-Z0-9_]+)"\s*\)', raw_main))
    # What main takes from the configuration: `config.provisional` reads TRAFFIC_PROVISIONAL.
    env_vars |= {var for field, var in config_fields() if re.search(rf"\bconfig\.{field}\b", raw_main)}
    return Function(crate, binary_name(crate), main, code, event, calls, reads_cfg, env_vars)


def functions() -> dict[str, Function]:
    traits = port_traits()
    helpers = shared_helpers(traits)
    return {c: load_function(c, traits, helpers) for c in function_crates()}


def code_needs(fn: Function, adapter: Adapter) -> Needs:
    """What a function's calls need from AWS, per the adapter's code."""
    needs = Needs()
    for trait, method in sorted(fn.port_calls):
        needs = needs | adapter.needs(trait, method)
    return needs


# --- Environment variables ------------------------------------------------------------------


def engine_variables() -> set[str]:
    """Every variable core/src/config.rs reads, with the plan's (core/src/plan.rs, which
    config.rs hands its lookup to)."""
    raw = (ROOT / "core/src/config.rs").read_text()
    found = set(re.findall(r'lookup\("([A-Z][A-Z0-9_]+)"\)', raw))
    found |= set(re.findall(r'\(\s*"([A-Z][A-Z0-9_]+)"\s*,\s*&mut', raw))
    found |= set(re.findall(r'int\("([A-Z][A-Z0-9_]+)"', raw))
    if "PlanConfig::from_lookup" in raw:
        plan = (ROOT / "core/src/plan.rs").read_text()
        found |= set(re.findall(r'num\("([A-Z][A-Z0-9_]+)"', plan))
    return found


def shared_env_vars() -> set[str]:
    """Variables functions/shared reads for every function (log format, store choice)."""
    found = set()
    for path in (ROOT / "functions/shared/src").rglob("*.rs"):
        found |= set(re.findall(r'env::var\(\s*"([A-Z][A-Z0-9_]+)"', path.read_text()))
    if "EnvFilter::try_from_default_env" in (ROOT / "functions/shared/src/lib.rs").read_text():
        found.add("RUST_LOG")
    logging = ROOT / "functions/shared/src/logging.rs"
    if logging.exists():
        found |= set(re.findall(r'lookup\("([A-Z][A-Z0-9_]+)"\)', logging.read_text()))
    if 'lookup("TRAFFIC_STORE")' in CONFIG_RS.read_text():
        found.add("TRAFFIC_STORE")
    # The metrics' switch and namespace, read by the one configuration every main builds.
    found |= set(re.findall(r'lookup\("(TRAFFIC_METRICS[A-Z_]*)"\)', CONFIG_RS.read_text()))
    return found - {"AWS_LAMBDA_FUNCTION_NAME"}


#: The function each metrics struct of functions/shared/src/metrics.rs is written by.
METRICS_STRUCTS = {"IngestMetrics": "ingest", "FaultMetrics": "fault", "MergeMetrics": "merge", "RequestMetrics": "api"}


def emitted_metrics() -> dict[str, set[str]]:
    """Function -> the metric names its EMF lines carry, from functions/shared/src/metrics.rs:
    the fields of each `#[metrics(rename_all = "PascalCase", ...)]` struct, in PascalCase,
    less the dimensions (the fields of type `&'static str` or `String`: Function, Route,
    Status) and the fields flagged `NoMetric` (properties), with the fields of the
    `#[metrics(subfield)]` structs it nests under `#[metrics(flatten)]`."""
    text = (ROOT / "functions/shared/src/metrics.rs").read_text()

    def fields_of(body: str) -> tuple[set[str], set[str]]:
        """(metric names, types flattened into it) of a struct's body."""
        fields, nested = set(), set()
        flag = None
        for line in body.splitlines():
            line = line.strip()
            if line.startswith("#[metrics(") and ("NoMetric" in line or "flatten" in line):
                flag = "flatten" if "flatten" in line else "NoMetric"
                continue
            f = re.match(r"pub (\w+): (.+),$", line)
            if not f:
                continue
            if flag == "flatten":
                nested.add(f.group(2))
            elif flag is None and f.group(2) not in ("&'static str", "String"):
                fields.add("".join(w.capitalize() for w in f.group(1).split("_")))
            flag = None
        return fields, nested

    subfields: dict[str, set[str]] = {}
    for m in re.finditer(r"#\[metrics\(subfield\)\][\s\S]*?pub struct (\w+) \{", text):
        subfields[m.group(1)] = fields_of(text[m.end() : block_end(text, m.end() - 1)])[0]
    out: dict[str, set[str]] = {}
    for m in re.finditer(r'#\[metrics\((?:[^\]]|\][^\n])*rename_all = "PascalCase"[\s\S]*?pub struct (\w+) \{', text):
        name = m.group(1)
        if name not in METRICS_STRUCTS:
            raise AssertionError(f"metrics.rs: a metrics struct {name} no function is known to write")
        fields, nested = fields_of(text[m.end() : block_end(text, m.end() - 1)])
        for ty in nested:
            if ty not in subfields:
                raise AssertionError(f"metrics.rs: {name} flattens {ty}, which is no #[metrics(subfield)] struct")
            fields |= subfields[ty]
        out[METRICS_STRUCTS[name]] = fields
    return out


def cargo_default_member_binaries() -> set[str] | None:
    """Binaries that `cargo build --bin <name>` at the workspace root finds: those of the
    workspace's default members (the root package, unless `default-members` says more).
    None when cargo is not available."""
    import json
    import shutil
    import subprocess

    cargo = shutil.which("cargo")
    if not cargo:
        return None
    out = subprocess.run(
        [cargo, "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    meta = json.loads(out.stdout)
    default = set(meta.get("workspace_default_members") or [])
    return {
        t["name"]
        for p in meta["packages"]
        if p["id"] in default
        for t in p["targets"]
        if "bin" in t["kind"]
    }


# --- Partition keys: which items of a table each port method reaches --------------------------

#: A partition key written as a format string: its fixed start, up to the first placeholder
#: (`format!("shard#{shard_id}")` is every key `shard#*`). Only starts of the project's key
#: shape (`word#`) count: sort keys and messages start otherwise.
PK_FORMAT_RE = re.compile(r'format!\(\s*"([a-z][a-z0-9-]*#[^"\x01]*)\x01')
#: A partition key written as a literal where a key is built: `key("merge", ..)`,
#: `Query::partition(Table::X, "panes")`, `pk: "results".into()`.
PK_LITERAL_RES = [
    re.compile(r'\bkey\(\s*"([^"\x01]+)"'),
    re.compile(r'\bpartition\(\s*Table::\w+\s*,\s*"([^"\x01]+)"'),
    re.compile(r'\bpk:\s*"([^"\x01]+)"'),
    re.compile(r'\bblob_items\(\s*"([^"\x01]+)"'),
    # Any literal of the key shape, wherever it is (`"network#parts"`, `"lamp#not-ok"`).
    re.compile(r'"([a-z][a-z0-9-]*#[a-z0-9#-]+)"'),
]
#: A constant holding a partition key (`const LOG_PK: &str = "alarm#log"`, or the first of a
#: pair: `const GENERATION_KEY: (&str, &str) = ("directory", "generation")`).
PK_CONST_RE = re.compile(r'\bconst\s+([A-Z][A-Z0-9_]*(?:_PK|_KEY))\s*:[^=]*=\s*\(?\s*"([^"\x01]+)"')
TEST_MOD_RE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{")


class KeyReader:
    """The partition keys (as IAM `dynamodb:LeadingKeys` patterns: `merge`, `shard#*`) that
    each port method of the DynamoDB store builds, read from the adapter's key builders: the
    literals, constants and format strings in the method, in the store's helpers it calls
    (`self.x(..)`) and in the free functions it calls (`meta_pk(..)`, `lamp_key(..)`)."""

    def __init__(self, root: Path = ROOT / "adapters/aws/src"):
        self.methods: dict[str, str] = {}  # DynamoStore's own methods
        self.impls: dict[tuple[str, str], str] = {}  # (trait, method) -> body
        self.free: dict[str, str] = {}  # every fn, by name (for bare calls)
        self.consts: dict[str, str] = {}
        self.assoc: dict[tuple[str, str], str] = {}  # (type, fn) -> body: `TimingItem::of`
        self.provided = provided_methods(ROOT / "ports/src")
        for path in sorted(root.rglob("*.rs")):
            text = read(path, keep_strings=True)
            for m in TEST_MOD_RE.finditer(text):
                end = block_end(text, m.end() - 1)
                text = text[: m.start()] + "\n" * text.count("\n", m.start(), end) + text[end:]
            self.consts.update(dict(PK_CONST_RE.findall(text)))
            top = text
            for m in IMPL_RE.finditer(text):
                end = block_end(text, m.end() - 1)
                top = top[: m.start()] + " " * (end - m.start()) + top[end:]
            for name, body in functions_in(top).items():
                self.free[name] = self.free.get(name, "") + body
            for trait, ty, block in impl_blocks(text):
                if ty != "DynamoStore":
                    if trait is None:
                        for name, body in functions_in(block[1:]).items():
                            self.assoc[(ty, name)] = self.assoc.get((ty, name), "") + body
                    continue
                for name, body in functions_in(block[1:]).items():
                    if trait is None:
                        self.methods[name] = self.methods.get(name, "") + body
                    elif trait in PORT_FIELDS.values():
                        self.impls[(trait, name)] = body

    def _own(self, body: str) -> set[str]:
        found = {p + "*" for p in PK_FORMAT_RE.findall(body)}
        for r in PK_LITERAL_RES:
            found |= set(r.findall(body))
        found |= {v for k, v in self.consts.items() if re.search(rf"\b{k}\b", body)}
        return found

    def _closure(self, body: str, seen: set[str]) -> set[str]:
        found = self._own(body)
        calls = [("self", h) for h in re.findall(r"\bself\s*\.\s*([a-z_][a-z0-9_]*)\s*\(", body)]
        # Free functions called, or passed by name (`.map(lamp_key)`).
        calls += [("free", f) for f in re.findall(r"(?<![\w.:])([a-z_][a-z0-9_]*)\b", body) if f in self.free]
        calls += [("assoc", c) for c in re.findall(r"\b([A-Z]\w*::[a-z_]\w*)\s*\(", body)]
        for kind, name in calls:
            if (kind, name) in seen:
                continue
            seen.add((kind, name))
            if kind == "assoc":
                ty, f = name.split("::")
                bodies = [self.assoc[(ty, f)]] if (ty, f) in self.assoc else []
            elif kind == "self":
                bodies = [self.methods[name]] if name in self.methods else []
                bodies += [b for (_, m), b in self.impls.items() if m == name]
            else:
                bodies = [self.free[name]] if name in self.free else []
            for b in bodies:
                found |= self._closure(b, seen)
        return found

    def partitions(self, trait: str, method: str) -> set[str]:
        """The partition key patterns one port method of the store reaches (a method the trait
        provides: those of the store's methods it calls)."""
        body = self.impls.get((trait, method))
        if body is None and any(t == trait for t, _ in self.impls):
            body = self.provided.get((trait, method))
        if body is None:
            return set()
        return self._closure(body, set())


def code_key_grants(fn: Function, adapter: Adapter, keys: KeyReader) -> dict[str, set[tuple[str, str]]]:
    """Per port method of `fn` that touches a table: the (table variable, action, key pattern)
    triples it may need, each of its actions with each of its keys (an over-approximation
    within one method: the template may grant less, never more). Keyed by `Trait::method`."""
    out: dict[str, set[tuple[str, str]]] = {}
    for trait, method in sorted(fn.port_calls):
        needs = adapter.needs(trait, method)
        table_grants = {(r, a) for r, a in needs.grants if r.endswith("_TABLE")}
        if not table_grants:
            continue
        pks = keys.partitions(trait, method)
        if not pks:
            raise CodeShapeError(f"{trait}::{method} uses a table but builds no partition key this reader recognises")
        out[f"{trait}::{method}"] = {(r, a, p) for r, a in table_grants for p in pks}
    return out

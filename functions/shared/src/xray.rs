//! AWS X-Ray subsegments from `tracing` spans: [`XrayLayer`], a `tracing_subscriber` layer
//! that turns each span of a sampled invocation into a subsegment and sends it, when the span
//! closes, to the X-Ray daemon Lambda runs beside the function (`AWS_XRAY_DAEMON_ADDRESS`, UDP).
//!
//! **Which trace.** Lambda gives each invocation a trace header,
//! `Root=1-…;Parent=<16 hex>;Sampled=1`: `lambda_runtime` puts it in the invocation's span
//! (`Lambda runtime invoke`, field `xrayTraceId`) and in the environment (`_X_AMZN_TRACE_ID`).
//! A span carrying that field is the *carrier*: it makes no subsegment of its own (Lambda
//! records the function's segment itself), its header decides for every span under it. A span
//! with no carrier above it reads `_X_AMZN_TRACE_ID` when it opens. Only `Sampled=1` traces
//! anything; no header, or one without a root and a parent, traces nothing.
//!
//! **The subsegment.** `type` `subsegment`, `trace_id` the root, `parent_id` the header's
//! parent (the function's segment) for a span with no traced span above it, else the
//! enclosing span's subsegment (so nesting follows the spans), a fresh 16-hex-digit `id`,
//! `name` the span's name, `start_time` and `end_time` in epoch seconds (when the span was
//! created and when it closed), `annotations` the span's fields (numbers, booleans, text cut
//! to 256 characters, keys made alphanumeric), and `fault: true` when an ERROR event happened
//! inside it or a boolean field `fault` says so (`error: true` likewise, for a client's error).
//!
//! **Never in the way.** One non-blocking UDP socket per process; a send that fails is
//! dropped; a document that would not fit a 64 KB datagram is sent without its annotations
//! (and `metadata.truncated`). Which spans it sees is the installer's filter
//! ([`crate::logging`] passes the runtime's and the functions' own spans, at INFO and above).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The line every datagram to the daemon starts with.
pub const HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The largest datagram sent (the daemon reads up to 64 KB).
pub const MAX_DATAGRAM: usize = 64 * 1000;

/// The field of the runtime's invocation span that holds the trace header.
pub const TRACE_FIELD: &str = "xrayTraceId";

/// The environment variable Lambda sets to the invocation's trace header.
pub const TRACE_ENV: &str = "_X_AMZN_TRACE_ID";

/// Longest annotation text kept, in characters.
const MAX_TEXT: usize = 256;

/// Most annotations kept per subsegment.
const MAX_ANNOTATIONS: usize = 50;

/// An invocation's trace header, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceHeader {
    /// The trace id (`1-<8 hex>-<24 hex>`).
    pub root: String,
    /// The id of the segment the function's subsegments hang under.
    pub parent: String,
    /// `Sampled=1`.
    pub sampled: bool,
}

impl TraceHeader {
    /// `Root=…;Parent=…;Sampled=…` (any order, other keys ignored); none without a root or a
    /// parent.
    pub fn parse(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, false);
        for part in header.split(';') {
            let Some((key, value)) = part.trim().split_once('=') else {
                continue;
            };
            match key.trim() {
                "Root" => root = Some(value.trim().to_owned()),
                "Parent" => parent = Some(value.trim().to_owned()),
                "Sampled" => sampled = value.trim() == "1",
                _ => {}
            }
        }
        let root = root.filter(|r| r.starts_with("1-") && r.len() == 35)?;
        let parent =
            parent.filter(|p| p.len() == 16 && p.bytes().all(|b| b.is_ascii_hexdigit()))?;
        Some(Self {
            root,
            parent,
            sampled,
        })
    }
}

/// The UDP address in an `AWS_XRAY_DAEMON_ADDRESS` value: `host:port`, or
/// `tcp:host:port udp:host:port`.
pub fn daemon_address(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    let udp = value
        .split_whitespace()
        .find_map(|p| p.strip_prefix("udp:"))
        .unwrap_or(value);
    udp.to_socket_addrs().ok()?.next()
}

/// A fresh segment id: 16 hex digits, never all zeros.
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", h.finish().max(1))
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

type HeaderLookup = Box<dyn Fn() -> Option<String> + Send + Sync>;

/// The layer ([`crate::xray`] says what it sends).
pub struct XrayLayer {
    socket: UdpSocket,
    daemon: SocketAddr,
    header: HeaderLookup,
}

impl std::fmt::Debug for XrayLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XrayLayer")
            .field("daemon", &self.daemon)
            .finish()
    }
}

impl XrayLayer {
    /// Sending to `daemon`, from a non-blocking socket on an ephemeral port; the header of a
    /// span with no carrier above it is `_X_AMZN_TRACE_ID`'s.
    pub fn new(daemon: SocketAddr) -> std::io::Result<Self> {
        let local: SocketAddr = if daemon.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local)?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            daemon,
            header: Box::new(|| std::env::var(TRACE_ENV).ok()),
        })
    }

    /// As [`XrayLayer::new`], to an `AWS_XRAY_DAEMON_ADDRESS` value; none when it names no
    /// address or no socket could be opened.
    pub fn to_daemon(value: &str) -> Option<Self> {
        Self::new(daemon_address(value)?).ok()
    }

    /// The same layer reading the header of a span with no carrier above it from `lookup`
    /// instead of the environment.
    pub fn with_header_lookup(
        mut self,
        lookup: impl Fn() -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.header = Box::new(lookup);
        self
    }

    fn send(&self, doc: &Value) {
        // A failed send (no daemon, a full buffer) is dropped: tracing never fails the handler.
        let _ = self
            .socket
            .send_to(&datagram(doc, MAX_DATAGRAM), self.daemon);
    }
}

/// The header line and `doc`; a document that would make it longer than `limit` bytes loses
/// its annotations and says `metadata.truncated`.
pub fn datagram(doc: &Value, limit: usize) -> Vec<u8> {
    let mut out = HEADER.as_bytes().to_vec();
    let body = doc.to_string();
    if out.len() + body.len() <= limit {
        out.extend_from_slice(body.as_bytes());
        return out;
    }
    let mut short = doc.clone();
    if let Some(o) = short.as_object_mut() {
        o.remove("annotations");
        o.insert("metadata".into(), json!({"truncated": true}));
    }
    out.extend_from_slice(short.to_string().as_bytes());
    out
}

/// A span's trace header, where it is the carrier (none: not sampled).
struct Carrier(Option<Arc<TraceHeader>>);

/// A traced span, until it closes.
struct Open {
    id: String,
    trace: Arc<TraceHeader>,
    parent_id: String,
    start: f64,
    fields: Fields,
}

#[derive(Default)]
struct Fields {
    header: Option<String>,
    annotations: Map<String, Value>,
    error: bool,
    fault: bool,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if self.annotations.len() >= MAX_ANNOTATIONS {
            return;
        }
        let key: String = field
            .name()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        self.annotations.insert(key, value);
    }

    fn text(&mut self, field: &Field, value: &str) {
        if field.name() == TRACE_FIELD {
            self.header = Some(value.to_owned());
            return;
        }
        self.put(
            field,
            Value::from(value.chars().take(MAX_TEXT).collect::<String>()),
        );
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.text(field, text.trim_matches('"'));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match field.name() {
            "error" => self.error |= value,
            "fault" => self.fault |= value,
            _ => self.put(field, value.into()),
        }
    }
}

impl<S> Layer<S> for XrayLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(header) = fields.header.take() {
            let trace = TraceHeader::parse(&header).filter(|t| t.sampled);
            span.extensions_mut().insert(Carrier(trace.map(Arc::new)));
            return;
        }
        // The nearest traced span or carrier above decides; with neither, the environment.
        let mut above = None;
        for s in span.scope().skip(1) {
            let ext = s.extensions();
            if let Some(open) = ext.get::<Open>() {
                above = Some(Some((open.trace.clone(), open.id.clone())));
                break;
            }
            if let Some(Carrier(trace)) = ext.get::<Carrier>() {
                above = Some(trace.clone().map(|t| {
                    let parent = t.parent.clone();
                    (t, parent)
                }));
                break;
            }
        }
        let above = above.unwrap_or_else(|| {
            (self.header)()
                .and_then(|h| TraceHeader::parse(&h))
                .filter(|t| t.sampled)
                .map(|t| {
                    let parent = t.parent.clone();
                    (Arc::new(t), parent)
                })
        });
        let Some((trace, parent_id)) = above else {
            return;
        };
        span.extensions_mut().insert(Open {
            id: new_id(),
            trace,
            parent_id,
            start: now_s(),
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(open) = span.extensions_mut().get_mut::<Open>()
        {
            values.record(&mut open.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(open) = span.extensions_mut().get_mut::<Open>() {
                open.fields.fault = true;
                return;
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(open) = span.extensions_mut().remove::<Open>() else {
            return;
        };
        let mut doc = json!({
            "type": "subsegment",
            "id": open.id,
            "trace_id": open.trace.root,
            "parent_id": open.parent_id,
            "name": span.name(),
            "start_time": open.start,
            "end_time": now_s().max(open.start),
        });
        if let Some(o) = doc.as_object_mut() {
            if !open.fields.annotations.is_empty() {
                o.insert("annotations".into(), open.fields.annotations.into());
            }
            if open.fields.error {
                o.insert("error".into(), true.into());
            }
            if open.fields.fault {
                o.insert("fault".into(), true.into());
            }
        }
        self.send(&doc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing_subscriber::layer::SubscriberExt;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";
    const PARENT: &str = "53995c3f42cd8ad8";

    fn header(sampled: u8) -> String {
        format!("Root={ROOT};Parent={PARENT};Sampled={sampled};Lineage=a87bd80c:1")
    }

    /// A daemon on a local port, and a layer sending to it (no environment header).
    fn daemon() -> (UdpSocket, XrayLayer) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = socket.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let layer = XrayLayer::new(addr)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_header_lookup(|| None);
        (socket, layer)
    }

    /// What arrived, each datagram's header checked and its document parsed.
    fn received(socket: &UdpSocket) -> Vec<Value> {
        let mut out = Vec::new();
        let mut buf = vec![0; 70_000];
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = text
                .strip_prefix(HEADER)
                .unwrap_or_else(|| panic!("no header line: {text}"));
            out.push(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")));
        }
        out
    }

    #[test]
    fn the_header_parses_in_any_order_and_needs_a_root_and_a_parent() {
        let h = TraceHeader::parse(&header(1));
        assert_eq!(
            h,
            Some(TraceHeader {
                root: ROOT.into(),
                parent: PARENT.into(),
                sampled: true
            })
        );
        let h = TraceHeader::parse(&format!("Sampled=0;Parent={PARENT};Root={ROOT}"));
        assert_eq!(h.map(|h| h.sampled), Some(false));
        assert_eq!(TraceHeader::parse(&format!("Root={ROOT};Sampled=1")), None);
        assert_eq!(
            TraceHeader::parse(&format!("Parent={PARENT};Sampled=1")),
            None
        );
        assert_eq!(TraceHeader::parse("Root=2-x;Parent=zz;Sampled=1"), None);
        assert_eq!(TraceHeader::parse(""), None);
    }

    #[test]
    fn the_daemon_address_is_either_form() {
        let a: SocketAddr = "169.254.79.129:2000"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(daemon_address("169.254.79.129:2000"), Some(a));
        assert_eq!(
            daemon_address("tcp:127.0.0.1:2000 udp:169.254.79.129:2000"),
            Some(a)
        );
        assert_eq!(daemon_address("nowhere"), None);
    }

    #[test]
    fn ids_are_sixteen_hex_digits_and_differ() {
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(
            ids.iter()
                .all(|i| i.len() == 16 && i.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn spans_under_a_sampled_carrier_become_nested_subsegments() {
        let (socket, layer) = daemon();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "r-1", xrayTraceId = %header(1));
            let _i = invoke.enter();
            let outer = tracing::info_span!(
                "test.outer",
                records = 5_u64,
                shard = "shardId-0",
                fault = tracing::field::Empty
            );
            outer.in_scope(|| {
                tracing::info_span!("test.inner").in_scope(|| {
                    tracing::error!("the store failed");
                });
            });
            outer.record("accepted", 2_u64);
        });
        let docs = received(&socket);
        assert_eq!(docs.len(), 2, "{docs:?}");
        let (inner, outer) = (&docs[0], &docs[1]);
        for d in &docs {
            assert_eq!(d["type"], "subsegment");
            assert_eq!(d["trace_id"], ROOT);
            let id = d["id"].as_str().unwrap_or_default();
            assert!(
                id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
                "{d}"
            );
            let (start, end) = (d["start_time"].as_f64(), d["end_time"].as_f64());
            assert!(
                matches!((start, end), (Some(s), Some(e)) if s > 1.7e9 && s <= e),
                "{d}"
            );
        }
        assert_eq!(outer["name"], "test.outer");
        assert_eq!(outer["parent_id"], PARENT);
        assert_eq!(outer["annotations"]["records"], 5);
        assert_eq!(outer["annotations"]["shard"], "shardId-0");
        assert_eq!(outer.get("fault"), None, "the error was the inner span's");
        assert_eq!(inner["name"], "test.inner");
        assert_eq!(inner["parent_id"], outer["id"]);
        assert_eq!(inner["fault"], true);
    }

    #[test]
    fn nothing_is_sent_unsampled_or_without_a_header() {
        let (socket, layer) = daemon();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let invoke = tracing::info_span!("Lambda runtime invoke", xrayTraceId = %header(0));
            invoke.in_scope(|| tracing::info_span!("test.step").in_scope(|| {}));
            tracing::info_span!("test.alone").in_scope(|| {});
        });
        assert_eq!(received(&socket), Vec::<Value>::new());
    }

    #[test]
    fn with_no_carrier_the_environment_header_decides() {
        let (socket, layer) = daemon();
        let layer = layer.with_header_lookup(|| Some(header(1)));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("test.step").in_scope(|| {});
        });
        let docs = received(&socket);
        assert_eq!(docs.len(), 1, "{docs:?}");
        assert_eq!(docs[0]["parent_id"], PARENT);
    }

    #[test]
    fn a_document_too_large_loses_its_annotations() {
        let doc =
            json!({"type": "subsegment", "name": "x", "annotations": {"big": "a".repeat(500)}});
        let full = datagram(&doc, MAX_DATAGRAM);
        assert!(String::from_utf8_lossy(&full).contains(&"a".repeat(500)));
        let short = datagram(&doc, 200);
        let text = String::from_utf8_lossy(&short);
        let body: Value = serde_json::from_str(text.strip_prefix(HEADER).unwrap_or_default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["name"], "x");
        assert_eq!(body.get("annotations"), None);
        assert_eq!(body["metadata"]["truncated"], true);
        assert!(short.len() <= 200);
    }

    #[test]
    fn a_daemon_that_is_not_there_changes_nothing() {
        // A port nobody listens on: the sends fail or vanish, the spans run as ever.
        let closed = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        let layer = XrayLayer::new(closed)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_header_lookup(|| Some(header(1)));
        let subscriber = tracing_subscriber::registry().with(layer);
        let n = tracing::subscriber::with_default(subscriber, || {
            (0..100)
                .map(|i| tracing::info_span!("test.step", i).in_scope(|| i))
                .sum::<u64>()
        });
        assert_eq!(n, 4950);
    }
}

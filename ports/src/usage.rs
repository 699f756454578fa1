//! What a backend has billed so far ([`UsageMeter`]).

/// What a backend has billed so far, in its own units (DynamoDB's capacity units and
/// requests), so that a function can record what each invocation cost.
pub trait UsageMeter: Send + Sync {
    /// The totals so far.
    fn usage(&self) -> Usage;
}

/// Capacity units and requests consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Read capacity units.
    pub read_units: f64,
    /// Write capacity units.
    pub write_units: f64,
    /// Read requests.
    pub read_requests: u64,
    /// Write requests.
    pub write_requests: u64,
}

impl Usage {
    /// What was consumed between `before` and `self`.
    pub fn since(&self, before: &Usage) -> Usage {
        Usage {
            read_units: self.read_units - before.read_units,
            write_units: self.write_units - before.write_units,
            read_requests: self.read_requests.saturating_sub(before.read_requests),
            write_requests: self.write_requests.saturating_sub(before.write_requests),
        }
    }
}

/// A meter for backends that bill nothing (the embedded store).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUsage;

impl UsageMeter for NoUsage {
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

//! A mean over a count that may be zero, as every figure of the system reports it.

/// `total` shared among `count` (readings, records, vehicles): its mean over them, 0 when
/// there are none.
pub fn mean(total: f64, count: u64) -> f64 {
    if count == 0 {
        0.0
    } else {
        total / count as f64
    }
}

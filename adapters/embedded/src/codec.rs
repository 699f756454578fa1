//! How the embedded store encodes what it keeps: postcard for state and results (floats come
//! back bit for bit), JSON for what people read (intersections, alarms).

use serde::{Serialize, de::DeserializeOwned};
use traffic_ports::{PortError, PortResult};

/// Postcard bytes of `v`.
pub fn encode<T: Serialize>(v: &T) -> PortResult<Vec<u8>> {
    postcard::to_allocvec(v).map_err(|e| PortError::backend("encoding state", e))
}

/// `T` from postcard bytes; [`PortError::Corrupt`] naming `what` if they are not one.
pub fn decode<T: DeserializeOwned>(b: &[u8], what: &str) -> PortResult<T> {
    postcard::from_bytes(b).map_err(|e| PortError::Corrupt(format!("{what}: {e}")))
}

/// JSON bytes of `v`.
pub fn to_json<T: Serialize>(v: &T) -> PortResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| PortError::backend("encoding JSON", e))
}

/// `T` from JSON bytes; [`PortError::Corrupt`] naming `what` if they are not one.
pub fn from_json<T: DeserializeOwned>(b: &[u8], what: &str) -> PortResult<T> {
    serde_json::from_slice(b).map_err(|e| PortError::Corrupt(format!("{what}: {e}")))
}

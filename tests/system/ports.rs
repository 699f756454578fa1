//! The port-contract suite (`traffic_ports::contract`) on the embedded store: every case on a
//! fresh store in a temporary directory. `tests/aws/ports.rs` runs the same cases on DynamoDB.

use traffic_embedded::EmbeddedStore;

/// A fresh embedded store, and the directory it lives in (removed when the case ends).
async fn fresh(_case: &'static str) -> anyhow::Result<(EmbeddedStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(dir.path().join("contract.redb"))?;
    Ok((store, dir))
}

traffic_ports::port_contract!(store = fresh);

//! Lets this package's binaries and tests find DuckDB's library at run time: the directory
//! scripts/duckdb.sh fills, which .cargo/config.toml names (adapters/archive links DuckDB).
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}

//! Checks that DuckDB's library is in place (scripts/duckdb.sh fetches it; .cargo/config.toml
//! names its directory) and lets this package's tests find it at run time.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") else {
        panic!(
            "DUCKDB_LIB_DIR is not set: build from the workspace, whose .cargo/config.toml sets it"
        );
    };
    let lib = std::path::Path::new(&dir).join("libduckdb.so");
    println!("cargo:rerun-if-changed={}", lib.display());
    assert!(
        lib.is_file(),
        "DuckDB's library is not at {}: run scripts/duckdb.sh (the README's commands run it)",
        lib.display()
    );
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
}

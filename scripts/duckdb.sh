#!/usr/bin/env bash
# DuckDB's library for the archive's SQL engine (adapters/archive; `traffic query`), fetched
# once into target/duckdb/<version>/libduckdb.so, where .cargo/config.toml points the
# `duckdb` crate (DUCKDB_LIB_DIR) and the binaries that link it find it at run time (their
# rpath, set by the build scripts of the packages that link it).
#
# DuckDB's own prebuilt library for Linux, as DuckDB publishes it on npm inside its Node.js
# bindings (@duckdb/node-bindings-linux-x64 / -arm64, MIT), pinned by version and checked
# against the registry's SHA-512: building it from source (the crate's `bundled` feature)
# compiles some 370 C++ units, about 45 minutes on two cores, which every fresh build would pay.
# The crate's version in Cargo.toml is DuckDB's (duckdb 1.10506.0 is DuckDB 1.5.6): change
# them together.
#
#   bash scripts/duckdb.sh        prints nothing when the library is in place
set -euo pipefail
cd "$(dirname "$0")/.."

version=1.5.6
release=1.5.6-r.1
case "$(uname -m)" in
  x86_64)
    arch=x64
    integrity='sha512-IXcrZJE6kEqM0Z4wwdVnGBHX/frOS33VPNAwDXQ/Q+Fs84b058Qe94chrCCIcNJlG8Y3UHIUU4eBeCQxW5mN1Q=='
    ;;
  aarch64 | arm64)
    arch=arm64
    integrity='sha512-3jnUaDil1BrF/6vAZwVaInJ1xoBaWGHB4PDiUnzJWKCo8a8TLx9j7/gPyPl/UGRBftrYIuTihRZSfF4mWMgtWA=='
    ;;
  *)
    echo "duckdb: no prebuilt DuckDB $version for $(uname -m) here" >&2
    exit 1
    ;;
esac
dir="target/duckdb/$version"
if [ -f "$dir/libduckdb.so" ]; then
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "duckdb: needs npm (Node.js 20) to fetch DuckDB's library: apt-get install nodejs npm" >&2
  exit 1
fi
package="@duckdb/node-bindings-linux-$arch@$release"
echo "== fetching DuckDB $version's library ($package) into $dir" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$package" >/dev/null)
tarball=$(ls "$tmp"/*.tgz)
got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [ "$got" != "$integrity" ]; then
  echo "duckdb: $package is not the pinned one (SHA-512 $got)" >&2
  exit 1
fi
tar -xzf "$tarball" -C "$tmp" package/libduckdb.so package/LICENSE
mkdir -p "$dir"
mv "$tmp/package/LICENSE" "$dir/LICENSE"
mv "$tmp/package/libduckdb.so" "$dir/libduckdb.so"

#!/usr/bin/env bash
# The build AWS runs: the four Lambda functions (ingest, fault, merge, api) built by cargo-lambda
# for Lambda's arm64 (Graviton) or x86_64, each into target/lambda/<function>/bootstrap, then
# checked: the ELF's machine is the one asked for, it needs no newer glibc than Lambda's
# provided.al2023 runtime has (2.34), it fits Lambda's limits (250 MB unzipped, 50 MB zipped;
# the sizes are printed), and neither the embedded store (traffic-embedded) nor redb is in its
# dependency graph (cargo tree) or its bytes.
#
#   scripts/lambda-build.sh            arm64, as infra/template.yaml deploys them
#   scripts/lambda-build.sh --x86-64   for an x86_64 Lambda (or this host)
#   scripts/lambda-build.sh --arm64 --profile release
#                                      the profile `sam build` uses (`--release`)
#
# The profile is `lambda` (Cargo.toml: release without link-time optimization, stripped; the
# reasons and the measured times are in docs/aws.md, "Building for AWS"). cargo-lambda
# cross-compiles and links with zig, which the `ziglang` Python package pins
# (scripts/requirements-test.txt, installed into .venv by scripts/venv.sh). The arm64 build
# needs Rust's standard library for aarch64-unknown-linux-gnu: this installs it with rustup
# when missing, and where that fails stops, naming the rustup command that installs it. One
# cargo invocation builds the four functions, so their dependencies compile once.
# CARGO_TARGET_DIR as for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

arch=arm64
profile=lambda
while [ $# -gt 0 ]; do
  case "$1" in
    --arm64) arch=arm64 ;;
    --x86-64 | --x86_64) arch=x86-64 ;;
    --profile) profile=${2:?--profile needs a name}; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "lambda-build: unknown argument $1 (--arm64, --x86-64, --profile NAME)" >&2; exit 2 ;;
  esac
  shift
done
case "$arch" in
  arm64) triple=aarch64-unknown-linux-gnu ;;
  x86-64) triple=x86_64-unknown-linux-gnu ;;
esac
functions=(ingest fault merge api)

bash scripts/venv.sh
export PATH="$root/.venv/bin:$PATH"

# The target's standard library: cargo-lambda's own check would offer to install it.
# rustup installs it when it can reach its server (at most 5 minutes); a machine that cannot
# gets the message below.
sysroot=$(rustc --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/$triple/lib" ] && command -v rustup >/dev/null; then
  echo "lambda-build: installing Rust's standard library for $triple (rustup target add)" >&2
  timeout 300 rustup target add "$triple" >&2 || true
fi
if [ ! -d "$sysroot/lib/rustlib/$triple/lib" ]; then
  echo "lambda-build: Rust's standard library for $triple is not installed" >&2
  echo "              (rustup target add $triple), so the $arch build cannot run here" >&2
  exit 3
fi
# cargo-lambda (cargo-zigbuild) takes CARGO_ZIGBUILD_ZIG_PATH, else a `zig` on PATH, else
# `python3 -m ziglang`: the pinned one, whatever else the machine has.
export CARGO_ZIGBUILD_ZIG_PATH
CARGO_ZIGBUILD_ZIG_PATH=$(python -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
zig_version=$("$CARGO_ZIGBUILD_ZIG_PATH" version)
echo "lambda-build: cargo lambda build --$arch --profile $profile (cargo-lambda $(cargo-lambda lambda --version | awk '{print $2}'), zig $zig_version)" >&2

target_dir=${CARGO_TARGET_DIR:-$root/target}
lambda_dir="$target_dir/lambda"
started=$(date +%s)
packages=()
for f in "${functions[@]}"; do packages+=(-p "$f"); done
# --disable-optimizations: the profile says everything (cargo-lambda would otherwise add its
# own flags to a release build, target-cpu among them).
cargo lambda build --quiet "--$arch" --profile "$profile" --disable-optimizations \
  "${packages[@]}" --bins --lambda-dir "$lambda_dir"
elapsed=$(($(date +%s) - started))
echo "lambda-build: built in $elapsed s" >&2

# No embedded store in what Lambda runs: by the dependency graph (normal and build
# dependencies, for the target) ...
for f in "${functions[@]}"; do
  if cargo tree --quiet -p "$f" -e normal,build --target "$triple" --prefix none --format '{p}' \
    | grep -E '^(redb|traffic-embedded) ' >&2; then
    echo "lambda-build: $f depends on the embedded store (above): no Lambda binary may" >&2
    exit 1
  fi
done

# ... and by the binaries themselves (machine, glibc, size, no redb code).
python - "$arch" "$lambda_dir" "$profile" "$elapsed" "${functions[@]}" <<'EOF'
import io, json, re, struct, sys, zipfile
from pathlib import Path

arch, lambda_dir, profile, elapsed, *functions = sys.argv[1:]
machine = {"arm64": 183, "x86-64": 62}[arch]  # EM_AARCH64, EM_X86_64
names = {183: "aarch64", 62: "x86-64"}
max_glibc = (2, 34)  # provided.al2023
mb = 1024 * 1024
failures, report = [], {}
for name in functions:
    path = Path(lambda_dir) / name / "bootstrap"
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        failures.append(f"{name}: not a 64-bit little-endian ELF file")
        continue
    (e_machine,) = struct.unpack_from("<H", data, 18)
    if e_machine != machine:
        failures.append(f"{name}: built for {names.get(e_machine, e_machine)}, not {arch}")
    glibc = max((tuple(map(int, m.groups())) for m in re.finditer(rb"GLIBC_(\d+)\.(\d+)", data)), default=(0, 0))
    if glibc > max_glibc:
        failures.append(f"{name}: needs glibc {glibc[0]}.{glibc[1]}, Lambda's provided.al2023 has 2.34")
    # The embedded store's code: redb's panic locations and paths, or the adapter's.
    found = sorted({m.decode() for m in re.findall(rb"redb-\d+\.\d+\.\d+/src|redb::|traffic_embedded|adapters/embedded", data)})
    if found:
        failures.append(f"{name}: links the embedded store ({', '.join(found)})")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
    zipped = len(buf.getvalue())
    if len(data) > 250 * mb:
        failures.append(f"{name}: {len(data) / mb:.1f} MB unzipped, over Lambda's 250 MB")
    if zipped > 50 * mb:
        failures.append(f"{name}: {zipped / mb:.1f} MB zipped, over Lambda's 50 MB direct upload")
    report[name] = {"bytes": len(data), "zip_bytes": zipped, "glibc": f"{glibc[0]}.{glibc[1]}"}
    print(f"lambda-build: {name}: {names.get(e_machine, e_machine)} ELF, {len(data) / mb:.1f} MB, "
          f"{zipped / mb:.1f} MB zipped, glibc >= {glibc[0]}.{glibc[1]}, no redb", file=sys.stderr)
for f in failures:
    print(f"lambda-build: {f}", file=sys.stderr)
print(json.dumps({"arch": arch, "profile": profile, "build_seconds": int(elapsed), "functions": report}))
sys.exit(1 if failures else 0)
EOF

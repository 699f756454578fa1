#!/usr/bin/env bash
# scripts/prereqs.sh on machines that are not ours: each case runs it with a PATH of its own
# (stand-ins for cargo, rustc, python3, node, npm, apt-get, id and Chromium; the real sed, awk,
# head and dirname), with one piece missing or wrong, and checks that it stops with one line
# naming the piece and the command that installs it, or installs what it can itself.
#
#   bash tests/scripts/prereqs_test.sh          (scripts/test.d/prereqs.sh runs it)
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
bash_bin=$(command -v bash)
# The interpreter itself, not a shim (pyenv's would need the real PATH).
real_python=$(python3 -c 'import sys; print(sys.executable)')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

# A fresh toolbox: every stand-in present and working, as root, with apt-get and Chromium.
toolbox() {
  local box=$tmp/box
  rm -rf "$box"
  mkdir -p "$box/bin"
  for t in sed awk head dirname cat touch chmod; do ln -s "$(command -v "$t")" "$box/bin/$t"; done
  cat >"$box/bin/rustc" <<EOF
#!$bash_bin
echo "rustc \${FAKE_RUSTC_VERSION:-1.95.0} (fake)"
EOF
  cat >"$box/bin/cargo" <<EOF
#!$bash_bin
case "\$1" in
  nextest) [ -e "$box/nextest" ] && { echo "cargo-nextest 0.9 (fake)"; exit 0; }; echo "error: no such command: nextest" >&2; exit 101 ;;
  install) echo "cargo \$*" >>"$box/calls"; touch "$box/nextest" ;;
esac
EOF
  touch "$box/nextest"
  cat >"$box/bin/python3" <<EOF
#!$bash_bin
if [ -n "\${FAKE_NO_ENSUREPIP:-}" ] && [[ "\$*" == *ensurepip* ]]; then exit 1; fi
if [ -n "\${FAKE_PYTHON_OLD:-}" ] && [[ "\$*" == *version_info* ]]; then exit 1; fi
if [ -n "\${FAKE_PYTHON_OLD:-}" ] && [[ "\$*" == *python_version* ]]; then echo 3.9.2; exit 0; fi
exec "$real_python" "\$@"
EOF
  for t in curl node npm; do printf '#!%s\nexit 0\n' "$bash_bin" >"$box/bin/$t"; done
  cat >"$box/bin/id" <<EOF
#!$bash_bin
echo "\${FAKE_UID:-0}"
EOF
  cat >"$box/bin/apt-get" <<EOF
#!$bash_bin
echo "apt-get \$*" >>"$box/calls"
if [[ "\$*" == *install*chromium* ]]; then printf '#!%s\nexit 0\n' "$bash_bin" >"$box/chromium"; chmod +x "$box/chromium"; fi
EOF
  printf '#!%s\nexit 0\n' "$bash_bin" >"$box/chromium"
  chmod +x "$box"/bin/* "$box/chromium"
  : >"$box/calls"
}

# run NAME EXPECTED_STATUS PATTERN... -- VAR=VALUE...: runs prereqs.sh in the toolbox; the
# patterns must all be in its stderr, which must be one line when it fails.
run() {
  local name=$1 want=$2
  shift 2
  local patterns=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do patterns+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  local status=0
  env -i PATH="$tmp/box/bin" HOME="$tmp" CHROMIUM="$tmp/box/chromium" "$@" \
    "$bash_bin" "$root/scripts/prereqs.sh" >"$tmp/out" 2>"$tmp/err" || status=$?
  local ok=1 why=""
  if [ "$status" -ne "$want" ]; then ok=0; why="exit $status, expected $want"; fi
  if [ "$want" -ne 0 ] && [ "$(wc -l <"$tmp/err")" -ne 1 ]; then ok=0; why="$why; stderr is not one line"; fi
  if [ "$want" -eq 0 ] && [ ${#patterns[@]} -eq 0 ] && [ -s "$tmp/err" ]; then ok=0; why="$why; not silent"; fi
  for p in "${patterns[@]}"; do
    if ! grep -qF -- "$p" "$tmp/err" "$tmp/box/calls"; then ok=0; why="$why; no '$p'"; fi
  done
  if [ "$ok" -eq 1 ]; then
    passed=$((passed + 1))
    echo "ok   $name"
  else
    failed=$((failed + 1))
    echo "FAIL $name: ${why#; }"
    sed 's/^/     stderr: /' "$tmp/err"
  fi
}

toolbox
run "a machine with everything passes silently" 0
toolbox
rm "$tmp/box/nextest"
run "a missing cargo-nextest is installed with cargo install --locked" 0 \
  "cargo install --locked --quiet cargo-nextest"
toolbox
rm "$tmp/box/bin/cargo"
run "without cargo it names rustup" 1 "cargo and rustc" "rustup"
toolbox
want=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
run "an older Rust than rust-version names rustup update" 1 "Rust $want or newer" "rustc 1.0.0" "rustup update" \
  -- FAKE_RUSTC_VERSION=1.0.0
toolbox
run "versions compare number by number (1.100 is newer than 1.90)" 0 -- FAKE_RUSTC_VERSION=1.100.0
toolbox
rm "$tmp/box/bin/python3"
run "without python3 it names the packages" 1 "python3 (3.11 or newer)" "apt-get install -y python3 python3-venv"
toolbox
run "an old python3 is named with its version" 1 "Python 3.11 or newer, this is 3.9.2" -- FAKE_PYTHON_OLD=1
toolbox
run "without the venv module it names python3-venv" 1 "venv module" "apt-get install -y python3-venv" \
  -- FAKE_NO_ENSUREPIP=1
toolbox
run "a user who is not root is told to use sudo" 1 "sudo apt-get install -y python3-venv" \
  -- FAKE_NO_ENSUREPIP=1 FAKE_UID=1000
toolbox
rm "$tmp/box/bin/curl"
run "without curl it names curl" 1 "curl: apt-get install -y curl"
toolbox
rm "$tmp/box/bin/node"
run "without node it names nodejs and npm" 1 "node and npm" "apt-get install -y nodejs npm"
toolbox
rm "$tmp/box/bin/npm"
run "without npm it names nodejs and npm" 1 "node and npm" "apt-get install -y nodejs npm"
toolbox
rm "$tmp/box/chromium"
run "a missing Chromium is installed with apt-get as root" 0 "apt-get install -y -qq chromium"
toolbox
rm "$tmp/box/chromium"
run "a missing Chromium without root needs sudo" 1 "installing it needs root" "sudo apt-get install -y chromium" \
  -- FAKE_UID=1000
toolbox
rm "$tmp/box/chromium" "$tmp/box/bin/apt-get"
run "without apt-get it names the package and CHROMIUM" 1 "package manager" "apt-get install -y chromium" "CHROMIUM"
toolbox
rm "$tmp/box/bin/apt-get" "$tmp/box/bin/node"
run "without apt-get the node line names the package manager" 1 "node and npm" "your system's package manager"

echo
echo "prereqs: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

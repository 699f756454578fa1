#!/usr/bin/env bash
# What the test command needs on this machine, in one place (README, "Prerequisites"). Installs
# what it can by itself (cargo-nextest; Chromium when it may use apt); otherwise stops at the
# first missing piece with one line on stderr naming it and the command that installs it.
#
#   bash scripts/prereqs.sh [rust] [python] [browser]     (default: all three)
#
# rust     cargo and rustc at least the workspace's rust-version, and cargo-nextest
# python   python3 >= 3.11 with its venv module (ensurepip), and curl
# browser  node and npm, and Chromium (CHROMIUM, default /usr/bin/chromium) for the dashboard test
#
# Exit status: 0 when everything is there (or was installed), 1 when something is missing.
# tests/scripts/prereqs_test.sh runs it with a PATH that hides one tool at a time.
set -euo pipefail
cd "$(dirname "$0")/.."

missing() {
  echo "prerequisite missing: $1" >&2
  exit 1
}

# How this machine installs a Debian package, for the messages: as root with apt-get, through
# sudo, or (no apt-get) in words.
apt_hint() {
  local pkgs=$1
  if command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then
      echo "apt-get install -y $pkgs"
    else
      echo "sudo apt-get install -y $pkgs"
    fi
  else
    echo "your system's package manager (Debian and Ubuntu: apt-get install -y $pkgs)"
  fi
}

check_rust() {
  command -v cargo >/dev/null 2>&1 && command -v rustc >/dev/null 2>&1 ||
    missing "cargo and rustc (Rust): install with rustup, https://rustup.rs (curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)"
  local want have
  want=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
  have=$(rustc --version | awk '{print $2}')
  if [ -n "$want" ] && ! version_at_least "$have" "$want"; then
    missing "Rust $want or newer (rust-version in Cargo.toml), this is rustc $have: rustup update stable"
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest (cargo install --locked cargo-nextest; a few minutes)" >&2
    cargo install --locked --quiet cargo-nextest ||
      missing "cargo-nextest, and cargo install --locked cargo-nextest failed (see above)"
    cargo nextest --version >/dev/null 2>&1 ||
      missing "cargo-nextest: installed, but cargo does not find it: put ~/.cargo/bin on PATH"
  fi
}

# version_at_least HAVE WANT: dotted versions compared number by number.
version_at_least() {
  local IFS=.
  local -a h=($1) w=($2)
  local i
  for i in 0 1 2; do
    local a=${h[i]:-0} b=${w[i]:-0}
    a=${a%%[!0-9]*} b=${b%%[!0-9]*}
    if [ "${a:-0}" -gt "${b:-0}" ]; then return 0; fi
    if [ "${a:-0}" -lt "${b:-0}" ]; then return 1; fi
  done
  return 0
}

check_python() {
  command -v python3 >/dev/null 2>&1 || missing "python3 (3.11 or newer): $(apt_hint "python3 python3-venv")"
  python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' ||
    missing "Python 3.11 or newer, this is $(python3 -c 'import platform; print(platform.python_version())'): $(apt_hint "python3 python3-venv") (or pyenv)"
  # Debian's python3 comes without ensurepip: `python3 -m venv` then fails half-way.
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 ||
    missing "Python's venv module (python3 -m venv): $(apt_hint "python3-venv")"
  command -v curl >/dev/null 2>&1 || missing "curl: $(apt_hint curl)"
}

check_browser() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    missing "node and npm (Node.js, for the dashboard test): $(apt_hint "nodejs npm")"
  local chromium=${CHROMIUM:-/usr/bin/chromium}
  if command -v "$chromium" >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    missing "Chromium ($chromium, for the dashboard test): $(apt_hint chromium), or set CHROMIUM to a Chromium binary"
  fi
  if [ "$(id -u)" -ne 0 ]; then
    missing "Chromium ($chromium, for the dashboard test), and installing it needs root: $(apt_hint chromium), or set CHROMIUM to a Chromium binary"
  fi
  echo "installing Chromium (apt-get install chromium)" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null ||
    missing "Chromium: apt-get install chromium failed (see above)"
  command -v "$chromium" >/dev/null 2>&1 ||
    missing "Chromium: installed, but $chromium is not there: set CHROMIUM to the Chromium binary"
}

what=("$@")
[ ${#what[@]} -gt 0 ] || what=(rust python browser)
for w in "${what[@]}"; do
  case "$w" in
    rust) check_rust ;;
    python) check_python ;;
    browser) check_browser ;;
    *) echo "prereqs: unknown group $w (rust, python, browser)" >&2; exit 2 ;;
  esac
done

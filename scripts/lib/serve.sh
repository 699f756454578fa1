# Sourced (not run) by the test scripts: starting a server on 127.0.0.1 and waiting for it (the
# test command's moto, the template checks' moto, the API contract's and the browser test's
# `traffic local`, the deployed stack's MiniStack), stopping it, and building the traffic
# command they run.

# Prints a TCP port that is free on 127.0.0.1 (the kernel's choice).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_for WHAT URL PID LOG SECONDS
# Polls URL every 0.2 s until it answers (HTTP 2xx), for at most SECONDS. Fails, printing LOG
# (the server's output), when process PID exits first or time runs out.
wait_for() {
  local what=$1 url=$2 pid=$3 log=$4 seconds=$5 i
  for ((i = 0; i < seconds * 5; i++)); do
    if curl -fsS "$url" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited; its output ($log):" >&2
      cat "$log" >&2
      return 1
    fi
    sleep 0.2
  done
  echo "$what did not answer $url within $seconds s; its output ($log):" >&2
  cat "$log" >&2
  return 1
}

# stop_server PID
# Stops a server this script started (nothing when PID is empty) and reaps it; for the EXIT
# traps.
stop_server() {
  local pid=$1
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
}

# start_moto LOG
# Starts moto_server (from PATH, or .venv/bin) on a free 127.0.0.1 port, logging to LOG, waits
# for it, and points the AWS SDKs at it (AWS_ENDPOINT_URL, test credentials); sets moto_pid
# for the caller's stop_server.
start_moto() {
  local log=$1 port moto
  moto=$(command -v moto_server || echo .venv/bin/moto_server)
  port=$(free_port)
  "$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  moto_pid=$!
  wait_for moto_server "http://127.0.0.1:$port/moto-api/" "$moto_pid" "$log" 20 || return 1
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port" TRAFFIC_EMULATOR=moto
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
}

# build_cli
# Builds the traffic command (the dev profile, without incremental caches as scripts/test.sh
# builds) unless TRAFFIC_BIN already names one, and exports TRAFFIC_BIN with its path: the
# one place the test scripts and scripts/sumo.sh build it.
build_cli() {
  if [ -n "${TRAFFIC_BIN:-}" ] && [ -x "$TRAFFIC_BIN" ]; then return 0; fi
  bash scripts/duckdb.sh
  CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}" cargo build --quiet --bin traffic >&2
  local dir=${CARGO_TARGET_DIR:-target}
  case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
  export TRAFFIC_BIN="$dir/debug/traffic"
}

# Sourced (not run) by the scripts that start a server on 127.0.0.1 and wait for it: the test
# command's moto, the template checks' moto, the API contract's and the browser test's
# `traffic local`, the deployed stack's MiniStack.

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

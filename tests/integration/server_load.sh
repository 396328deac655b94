#!/usr/bin/env bash
# Load: 64 connections for 30 s against /v1/completions on stories260K with wrk.
# Passes when no request fails (no 5xx, no socket errors), the server survives, and
# its resident memory is flat (growth between 10 s and the end under 16 MiB), and it
# shuts down cleanly. Prints requests/s and the latency percentiles.
# KILN_LOAD_SECONDS changes the duration. Under ASan (KILN_SANITIZE=1) the run is 10 s
# and RSS is not judged (ASan's quarantine holds freed memory); leaks are, at exit.
set -uo pipefail
dir=${KILN_SHARED:-../shared}/models
[ -f "$dir/stories260K/stories260K.bin" ] || { echo "SKIP: $dir/stories260K missing"; exit 77; }
command -v wrk >/dev/null || { echo "SKIP: wrk not installed (apt-get install wrk)"; exit 77; }
kiln=${KILN_BIN:?}
secs=${KILN_LOAD_SECONDS:-30}
[ -n "${KILN_SANITIZE:-}" ] && secs=${KILN_LOAD_SECONDS:-10}
tmp=${KILN_TMP:-/tmp}/server_load.$$
mkdir -p "$tmp"
. "$(dirname "$0")/lib/serve.bash"
trap 'stop_kiln_serve; rm -rf "$tmp"' EXIT

start_kiln_serve --models "$dir" --data "$tmp/data" --parallel 2 --threads 1
cat >"$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 16, "temperature": 0.8}'
LUA
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
wrk -t 2 -c 64 -d "${secs}s" --timeout 10s --latency -s "$tmp/post.lua" "http://127.0.0.1:$port/v1/completions" \
  >"$tmp/wrk.txt" 2>&1 &
wrk_pid=$!
sleep $((secs / 3)); rss_a=$(rss)
wait $wrk_pid
rss_b=$(rss)
cat "$tmp/wrk.txt"
fail=0
kill -0 $pid 2>/dev/null || { echo "FAIL: the server died"; fail=1; }
grep -q "Non-2xx or 3xx responses" "$tmp/wrk.txt" && { echo "FAIL: some requests got an error status"; fail=1; }
grep -q "Socket errors" "$tmp/wrk.txt" && { echo "FAIL: socket errors (connect/read/write/timeout)"; fail=1; }
rps=$(awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt")
p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk.txt")
p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt")
echo "load: 64 connections, ${secs} s: ${rps} requests/s, p50 ${p50}, p99 ${p99}; RSS ${rss_a} KiB at ${secs}/3 s -> ${rss_b} KiB at the end"
if [ -z "${KILN_SANITIZE:-}" ]; then
  [ $((rss_b - rss_a)) -lt 16384 ] || { echo "FAIL: resident memory grew by $((rss_b - rss_a)) KiB"; fail=1; }
fi
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { echo "FAIL: /health after the load"; fail=1; }
kill -TERM $pid
wait $pid
rc=$?
pid=
[ $rc -eq 0 ] || { echo "FAIL: kiln serve exited with $rc after SIGTERM"; tail -20 "$tmp/serve.log"; fail=1; }
exit $fail

# serve.bash — sourced by the shell integration tests: starts `kiln serve` on a free
# port and stops it at exit. Sets $pid, $port and $url; the log is $tmp/serve.log.
# Usage: start_kiln_serve ARGS...   (needs $kiln and $tmp)
pid=
stop_kiln_serve() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
  pid=
}
start_kiln_serve() {
  "$kiln" serve --port 0 "$@" >"$tmp/serve.log" 2>&1 &
  pid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$tmp/serve.log")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "FAIL: kiln serve did not start"; cat "$tmp/serve.log"; exit 1; }
  url=http://127.0.0.1:$port
}

#!/usr/bin/env bash
# vs_llamacpp_embed.sh MODEL.gguf... — llama.cpp (npm's node-llama-cpp, installed once
# into $NLC_DIR, default /tmp/kiln-nlc) and kiln on the same embedding models, back
# to back, on the same thread count: one SHORT-token text (ms) and TEXTS texts of
# LONG tokens (tokens/s), and their ratios. THREADS (all cores), SHORT (16), LONG
# (128), TEXTS (64).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/vs_llamacpp_embed.sh MODEL.gguf..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
kiln=${BUILD:-$here/../build}/kiln
nlc=${NLC_DIR:-/tmp/kiln-nlc}
threads=${THREADS:-$(nproc)}
short=${SHORT:-16}
long=${LONG:-128}
texts=${TEXTS:-64}
if [ ! -d "$nlc/node_modules/node-llama-cpp" ]; then
  mkdir -p "$nlc"
  (cd "$nlc" && echo '{"private":true,"type":"module"}' >package.json &&
   npm install --no-audit --no-fund --silent node-llama-cpp >/dev/null)
fi
cp "$here/llamacpp/embed.mjs" "$nlc/"
echo "| model | llama.cpp ${short} tok (ms) | kiln (ms) | speed-up | llama.cpp ${texts}x${long} (tok/s) | kiln (tok/s) | ratio | kiln peak RSS |"
echo "|---|---|---|---|---|---|---|---|"
for m in "$@"; do
  ref=$(node "$nlc/embed.mjs" "$m" "$short" "$long" "$texts" "$threads" 2>/dev/null | grep '^{')
  ours=$("$kiln" bench -m "$m" --short "$short" -p "$long" --texts "$texts" -r 3 -t "$threads" --json)
  python3 - "$(basename "$m")" "$ref" "$ours" <<'PY'
import json, sys
name, ref, ours = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
ks, kb = ours["short"]["ms_mean"], ours["batch"]["tok_s_mean"]
print("| %s | %.2f | %.2f | %.2fx | %.0f | %.0f | %.2fx | %.0f MiB |" % (
    name, ref["short_ms"], ks, ref["short_ms"] / ks, ref["batch_tok_s"], kb, kb / ref["batch_tok_s"],
    ours["peak_rss_mib"]))
PY
done

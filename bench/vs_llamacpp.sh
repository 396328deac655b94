#!/usr/bin/env bash
# vs_llamacpp.sh MODEL... — llama.cpp and kiln on the same files, back to back, on the
# same thread count: prompt (pp) and generation (tg) tokens per second and their ratio.
# llama.cpp comes from the prebuilt CPU libraries of npm's node-llama-cpp, installed
# once into $NLC_DIR (default /tmp/kiln-nlc); kiln is build/kiln.
# THREADS (default: all cores), PP (512), TG (64).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/vs_llamacpp.sh MODEL.gguf..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
kiln=${BUILD:-$here/../build}/kiln
nlc=${NLC_DIR:-/tmp/kiln-nlc}
threads=${THREADS:-$(nproc)}
pp=${PP:-512}
tg=${TG:-64}
if [ ! -d "$nlc/node_modules/node-llama-cpp" ]; then
  mkdir -p "$nlc"
  (cd "$nlc" && echo '{"private":true,"type":"module"}' >package.json &&
   npm install --no-audit --no-fund --silent node-llama-cpp >/dev/null)
fi
cp "$here/llamacpp/bench.mjs" "$nlc/"
echo "| model | llama.cpp pp$pp | kiln pp$pp | ratio | llama.cpp tg$tg | kiln tg$tg | ratio |"
echo "|---|---|---|---|---|---|---|"
for m in "$@"; do
  ref=$(node "$nlc/bench.mjs" "$m" "$pp" "$tg" "$threads" 2>/dev/null | grep '^{')
  ours=$("$kiln" bench -m "$m" -p "$pp" -n "$tg" -r 3 -t "$threads" --json)
  python3 - "$(basename "$m")" "$ref" "$ours" <<'PY'
import json, statistics, sys
name, ref, ours = sys.argv[1], [json.loads(l) for l in sys.argv[2].splitlines()], json.loads(sys.argv[3])
# the first llama.cpp repetition warms up; kiln bench warms up by itself
rpp = statistics.mean(r["pp_tok_s"] for r in ref[1:]); rtg = statistics.mean(r["tg_tok_s"] for r in ref[1:])
kpp, ktg = ours["pp"]["tok_s_mean"], ours["tg"]["tok_s_mean"]
print(f"| {name} | {rpp:.1f} | {kpp:.1f} | {kpp/rpp:.2f}x | {rtg:.2f} | {ktg:.2f} | {ktg/rtg:.2f}x |")
PY
done

#!/usr/bin/env bash
# table.sh MODEL... — one markdown table of prompt (pp512) and generation (tg128)
# speed for several models, with generation as a fraction of the measured memory
# bandwidth (weights read per token x tok/s / GB/s; see roofline.sh).
# THREADS (default: all cores), REPS (default 3), PP (512), TG (128), BUILD (build/).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/table.sh MODEL.gguf..." >&2; exit 2; }
build=${BUILD:-$(dirname "$0")/../build}
threads=${THREADS:-$(nproc)}
reps=${REPS:-3}
pp=${PP:-512}
tg=${TG:-128}
gbs=$("$build/bench_bandwidth" -t "$threads" 2>/dev/null | awk -v t="$threads" '$1 == t { print $2 }')
echo "memory bandwidth: $gbs GB/s ($threads threads, build/bench_bandwidth)"
echo
echo "| model | type | size | pp$pp tok/s | tg$tg tok/s | GB/s used | of bandwidth |"
echo "|---|---|---|---|---|---|---|"
for m in "$@"; do
  json=$("$build/kiln" bench -m "$m" -p "$pp" -n "$tg" -r "$reps" -t "$threads" --json)
  python3 - "$gbs" "$json" "$(basename "$m")" <<'PY'
import json, sys
gbs = float(sys.argv[1]); b = json.loads(sys.argv[2])
tps = b["tg"]["tok_s_mean"]; used = b["bytes_per_token"] * tps / 1e9
print(f"| {sys.argv[3]} | {b['type']} | {b['size_bytes']/2**20:.0f} MiB "
      f"| {b['pp']['tok_s_mean']:.1f} ± {b['pp']['tok_s_sd']:.1f} | {tps:.2f} ± {b['tg']['tok_s_sd']:.2f} "
      f"| {used:.1f} | {100*used/gbs:.0f}% |")
PY
done

#!/usr/bin/env bash
# table.sh MODEL... — one markdown table of prompt (pp512) and generation (tg128)
# speed for several models, with generation as a fraction of the measured memory
# bandwidth (weights read per token x tok/s / GB/s; see roofline.sh). Shared machines
# drift by tens of percent within minutes, so the bandwidth is probed right before and
# right after each model and the fraction uses the mean of the two (both printed).
# THREADS (default: all cores), REPS (default 3), PP (512), TG (128), BUILD (build/).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/table.sh MODEL.gguf..." >&2; exit 2; }
build=${BUILD:-$(dirname "$0")/../build}
threads=${THREADS:-$(nproc)}
reps=${REPS:-3}
pp=${PP:-512}
tg=${TG:-128}
probe() { "$build/bench_bandwidth" -t "$threads" 2>/dev/null | awk -v t="$threads" '$1 == t { print $2 }'; }
echo "memory bandwidth: build/bench_bandwidth, $threads threads, before / after each model"
echo
echo "| model | type | size | pp$pp tok/s | tg$tg tok/s | GB/s used | bandwidth GB/s | of bandwidth |"
echo "|---|---|---|---|---|---|---|---|"
for m in "$@"; do
  before=$(probe)
  json=$("$build/kiln" bench -m "$m" -p "$pp" -n "$tg" -r "$reps" -t "$threads" --json)
  after=$(probe)
  python3 - "$before" "$after" "$json" "$(basename "$m")" <<'PY'
import json, sys
b0, b1 = float(sys.argv[1]), float(sys.argv[2]); gbs = (b0 + b1) / 2; b = json.loads(sys.argv[3])
tps = b["tg"]["tok_s_mean"]; used = b["bytes_per_token"] * tps / 1e9
print(f"| {sys.argv[4]} | {b['type']} | {b['size_bytes']/2**20:.0f} MiB "
      f"| {b['pp']['tok_s_mean']:.1f} ± {b['pp']['tok_s_sd']:.1f} | {tps:.2f} ± {b['tg']['tok_s_sd']:.2f} "
      f"| {used:.1f} | {b0:.1f} / {b1:.1f} | {100*used/gbs:.0f}% |")
PY
done

#!/usr/bin/env bash
# roofline.sh MODEL [THREADS] — kiln's generation speed as a fraction of the memory
# bandwidth this machine measures.
#
# Generating a token reads every weight once (all tensors of the file except the
# token embedding, which is only gathered — unless it is tied to the output), so the
# speed can never exceed  bandwidth / bytes_per_token.  The script measures both
# (build/bench_bandwidth, kiln bench -p 0 -n 64) and prints how close kiln comes.
# BUILD (default build/) and RUNS (kiln bench repetitions, default 3) may be set.
set -euo pipefail
model=${1:?usage: bench/roofline.sh MODEL [THREADS]}
threads=${2:-$(nproc)}
build=${BUILD:-$(dirname "$0")/../build}
runs=${RUNS:-3}
[ -x "$build/kiln" ] && [ -x "$build/bench_bandwidth" ] || { echo "roofline: build first (make)" >&2; exit 1; }

probe() { "$build/bench_bandwidth" -t "$threads" 2>/dev/null | awk -v t="$threads" '$1 == t { print $2 }'; }
before=$(probe)   # shared machines drift: probe before and after, use the mean
json=$("$build/kiln" bench -m "$model" -p 0 -n 64 -r "$runs" -t "$threads" --json)
after=$(probe)
python3 - "$before" "$after" "$json" <<'PY'
import json, sys
b0, b1 = float(sys.argv[1]), float(sys.argv[2]); gbs = (b0 + b1) / 2; b = json.loads(sys.argv[3])
tps = b["tg"]["tok_s_mean"]; per_tok = b["bytes_per_token"]
used = per_tok * tps / 1e9
print(f"model          {b['model']} ({b['type']}, {b['params']/1e6:.1f} M params)")
print(f"threads, isa   {b['threads']}, {b['isa']}")
print(f"bytes / token  {per_tok/2**20:.1f} MiB (weights read per generated token)")
print(f"generation     {tps:.2f} ± {b['tg']['tok_s_sd']:.2f} tok/s")
print(f"bandwidth      {gbs:.2f} GB/s measured (bench_bandwidth, {b['threads']} threads; {b0:.2f} before, {b1:.2f} after)")
print(f"used           {used:.2f} GB/s = {100*used/gbs:.1f}% of the measured bandwidth")
print(f"ceiling        {gbs*1e9/per_tok:.1f} tok/s at 100%")
PY

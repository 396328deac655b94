#!/usr/bin/env bash
# kiln image end to end on a random-weight Stable Diffusion model (sd-tiny shape): PNGs
# with AUTOMATIC1111's "parameters" text chunk and JSON sidecars, batch seeds, thread
# counts bit-identical, Ctrl-C cancelling between steps without leaving a file, and
# clear errors for bad options and models.
set -uo pipefail
kiln=${KILN_BIN:?}
tmp=${KILN_TMP:-/tmp}/image_cli.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0; pass=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); else echo "FAIL: $name"; fail=$((fail+1)); fi
}
not() { ! "$@"; }

"$kiln" quantize --random sd-tiny "$tmp/sd" f16 -q
check "random model written" test -s "$tmp/sd/unet/diffusion_pytorch_model.safetensors"
m="$tmp/sd"

"$kiln" image -m "$m" -p "a photo of a (cat:1.2), watercolor" -n "blurry" --steps 4 --seed 42 -W 64 -H 96 \
  --sampler dpmpp_2m -o "$tmp/a.png" >"$tmp/out" 2>"$tmp/err"
check "image: exit 0" test $? -eq 0
check "image: path and seed printed" grep -q "a.png  seed 42" "$tmp/out"
check "image: progress on stderr" grep -q "step 4/4" "$tmp/err"
check "PNG of 64x96 with the parameters chunk and a sidecar" python3 -c '
import json, struct, sys, zlib
d = open(sys.argv[1], "rb").read()
assert d[:8] == b"\x89PNG\r\n\x1a\n"
w, h = struct.unpack(">II", d[16:24]); assert (w, h) == (64, 96), (w, h)
i, texts = 8, {}
while i < len(d):
    n, = struct.unpack(">I", d[i:i+4]); kind = d[i+4:i+8]; body = d[i+8:i+8+n]
    assert zlib.crc32(kind + body) == struct.unpack(">I", d[i+8+n:i+12+n])[0]
    if kind == b"tEXt":
        k, v = body.split(b"\0", 1); texts[k.decode()] = v.decode("latin-1")
    i += 12 + n
p = texts["parameters"].split("\n")
assert p[0] == "a photo of a (cat:1.2), watercolor" and p[1] == "Negative prompt: blurry", p
assert p[2].startswith("Steps: 4, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 42, Size: 64x96,"), p[2]
j = json.load(open(sys.argv[2]))
assert j["seed"] == "42" and j["sampler"] == "dpmpp_2m" and j["width"] == 64 and j["height"] == 96, j
' "$tmp/a.png" "$tmp/a.json"

"$kiln" image -m "$m" -p "a photo of a (cat:1.2), watercolor" -n "blurry" --steps 4 --seed 42 -W 64 -H 96 \
  --sampler dpmpp_2m -t 1 -q -o "$tmp/b.png" >/dev/null 2>&1
check "1 thread: the same PNG" cmp -s "$tmp/a.png" "$tmp/b.png"
"$kiln" image -m "$m" -p "a fox" --steps 3 --seed 7 --batch 2 -q -o "$tmp/batch.png" >/dev/null 2>&1
"$kiln" image -m "$m" -p "a fox" --steps 3 --seed 8 -q -o "$tmp/single.png" >/dev/null 2>&1
check "batch: two numbered files" test -s "$tmp/batch-1.png" -a -s "$tmp/batch-2.png"
check "batch image 2 is seed + 1 alone" cmp -s "$tmp/batch-2.png" "$tmp/single.png"
check "different seeds, different images" not cmp -s "$tmp/batch-1.png" "$tmp/batch-2.png"

"$kiln" image -m "$m" -p "a fox" --steps 150 -W 512 -H 512 -q -o "$tmp/cancel.png" >/dev/null 2>"$tmp/cerr" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
check "Ctrl-C: exit 1" test $? -eq 1
check "Ctrl-C: cancelled, said so" grep -q "cancelled after step" "$tmp/cerr"
check "Ctrl-C: no file left" not test -e "$tmp/cancel.png"

"$kiln" image -m "$m" -p "x" -W 65 -q -o "$tmp/bad.png" 2>"$tmp/e1"
check "bad width: exit 1 with the rule" bash -c "[ $? -eq 1 ] && grep -q 'multiples of 8' '$tmp/e1'"
"$kiln" image -m "$m" -p "x" --sampler plms -q -o "$tmp/bad.png" 2>"$tmp/e2"
check "unknown sampler named" grep -q "plms" "$tmp/e2"
"$kiln" image -m "$m" -q -o "$tmp/bad.png" 2>/dev/null
check "no prompt: usage error 2" test $? -eq 2
"$kiln" image -m "$tmp/nothing" -p "x" -q 2>"$tmp/e3"
check "missing model: exit 1, named" bash -c "[ $? -eq 1 ] && grep -q nothing '$tmp/e3'"
rm "$m/unet/diffusion_pytorch_model.safetensors"
"$kiln" image -m "$m" -p "x" -q 2>"$tmp/e4"
check "model without UNet weights: named" grep -q "unet" "$tmp/e4"
check "no stray files" bash -c "! ls '$tmp' | grep -q tmp"

echo "image_cli: $pass passed, $fail failed"
[ $fail -eq 0 ]

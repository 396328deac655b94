#!/usr/bin/env bash
# kiln quantize / kiln quantize --random / kiln bench end to end: random models of the
# tiny test shapes (and smollm-135m outside sanitizer builds), re-quantized to every
# type this build can write; info shows the types, generate runs and is deterministic,
# bench --json parses with positive speeds; errors are clear and leave no output file.
set -uo pipefail
kiln=${KILN_BIN:?}
tmp=${KILN_TMP:-/tmp}/quantize_bench.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0; pass=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); else echo "FAIL: $name"; fail=$((fail+1)); fi
}
not() { ! "$@"; }
no_file() { ! ls "$1"* >/dev/null 2>&1; } # neither the file nor a temporary beside it

# 1. random models: deterministic for a seed, whatever the thread count
"$kiln" quantize --random tiny "$tmp/tiny.gguf" f32 --seed 3 -t 1 2>"$tmp/r.err"
check "random tiny f32 written" test -s "$tmp/tiny.gguf"
"$kiln" quantize --random tiny "$tmp/tiny2.gguf" f32 --seed 3 -t 2 2>/dev/null
check "same seed, 1 vs 2 threads: identical files" cmp -s "$tmp/tiny.gguf" "$tmp/tiny2.gguf"
"$kiln" quantize --random tiny "$tmp/tiny3.gguf" f32 --seed 4 2>/dev/null
check "another seed: other weights" not cmp -s "$tmp/tiny.gguf" "$tmp/tiny3.gguf"
rm -f "$tmp/tiny2.gguf" "$tmp/tiny3.gguf"
"$kiln" quantize --random tiny-bpe "$tmp/tbpe.gguf" q8_0 2>/dev/null
"$kiln" info "$tmp/tbpe.gguf" >"$tmp/tbpe.info"
check "bpe model: gpt2 tokenizer with merges" grep -q 'tokenizer.ggml.merges' "$tmp/tbpe.info"
check "bpe model: tied embeddings (no output.weight)" not grep -q '^  output.weight' "$tmp/tbpe.info"
"$kiln" tokenize -m "$tmp/tbpe.gguf" "hello world" >"$tmp/tok.txt" 2>&1
check "bpe model tokenizes" grep -qE '^[0-9 ]+$' "$tmp/tok.txt"

# 2. every type: quantized where this build can, refused clearly where it cannot
gen() { "$kiln" generate -m "$1" -p "hello world" -n 8 --temperature 0 -t "$2" 2>"$tmp/gen.err"; }
for t in q8_0 q4_0 q4_1 q5_0 q5_1 q2_k q3_k q4_k q5_k q6_k f16 bf16 f32 q4_k_m q5_k_m; do
  out="$tmp/tiny-$t.gguf"
  if "$kiln" quantize "$tmp/tiny.gguf" "$out" "$t" 2>"$tmp/q.err"; then
    "$kiln" info "$out" >"$tmp/info.txt"
    base=${t%_m}
    check "$t: info shows $base weights" grep -qE "^  blk\.0\.attn_q\.weight +$base " "$tmp/info.txt"
    check "$t: norms stay f32" grep -qE "^  blk\.0\.attn_norm\.weight +f32 " "$tmp/info.txt"
    if [ "$t" = q4_k_m ] || [ "$t" = q5_k_m ]; then
      check "$t: output.weight is q6_k" grep -qE "^  output\.weight +q6_k " "$tmp/info.txt"
      check "$t: blk.1.attn_v (use_more_bits) is q6_k" grep -qE "^  blk\.1\.attn_v\.weight +q6_k " "$tmp/info.txt"
      check "$t: blk.0.attn_v is $base" grep -qE "^  blk\.0\.attn_v\.weight +$base " "$tmp/info.txt"
    fi
    if gen "$out" 1 >"$tmp/g1.txt"; then
      gen "$out" 2 >"$tmp/g2.txt"
      gen "$out" 2 >"$tmp/g3.txt"
      check "$t: generate deterministic (1 vs 2 threads, repeated)" cmp -s "$tmp/g1.txt" "$tmp/g2.txt"
      check "$t: generate repeatable" cmp -s "$tmp/g2.txt" "$tmp/g3.txt"
    else
      # kiln can write the type but not yet multiply it: must say so
      check "$t: generate refuses clearly" grep -qiE "not supported|unsupported" "$tmp/gen.err"
      case $t in q8_0|q4_0|f16|bf16|f32) echo "FAIL: $t must run"; fail=$((fail+1));; esac
    fi
    rm -f "$out"
  else
    check "$t: refused as not supported by this build" grep -q "not supported by this build" "$tmp/q.err"
    check "$t: no output left" no_file "$out"
    case $t in q8_0|q4_0|f16|bf16|f32) echo "FAIL: $t must be supported"; fail=$((fail+1));; esac
  fi
done
# quantized input is dequantized first
"$kiln" quantize "$tmp/tbpe.gguf" "$tmp/tbpe-q4.gguf" q4_0 2>/dev/null
check "q8_0 input re-quantized to q4_0" grep -qE "^  blk\.0\.ffn_up\.weight +q4_0 " <("$kiln" info "$tmp/tbpe-q4.gguf")
check "file type set" grep -q "general.file_type = 2 " <("$kiln" info "$tmp/tbpe-q4.gguf")

# 3. bench --json
"$kiln" quantize "$tmp/tiny.gguf" "$tmp/tiny-q8.gguf" q8_0 2>/dev/null
"$kiln" bench -m "$tmp/tiny-q8.gguf" -p 16 -n 8 -r 2 --json >"$tmp/bench.json" 2>"$tmp/bench.err"
check "bench --json parses with positive figures" python3 -c '
import json, sys
b = json.load(open(sys.argv[1]))
assert b["pp"]["tok_s_mean"] > 0 and b["tg"]["tok_s_mean"] > 0, b
assert len(b["pp"]["samples"]) == 2 and b["pp"]["tokens"] == 16 and b["tg"]["tokens"] == 8
assert b["type"] == "Q8_0" and b["params"] > 0 and 0 < b["bytes_per_token"] < b["size_bytes"]
assert b["threads"] >= 1 and b["isa"] in ("ref", "avx2", "avx512")' "$tmp/bench.json"
"$kiln" bench -m "$tmp/tiny-q8.gguf" -p 0 -n 4 -r 1 >"$tmp/bench.txt"
check "bench table: tg only when -p 0" bash -c "grep -q 'tg4' '$tmp/bench.txt' && ! grep -q 'pp0' '$tmp/bench.txt'"

# 4. errors: clear message, non-zero exit, no OUT left
"$kiln" quantize "$tmp/tiny.gguf" "$tmp/bad.gguf" q9_9 2>"$tmp/e1"; rc=$?
check "bad type: non-zero exit" test $rc -ne 0
check "bad type: message" grep -q "unknown type 'q9_9'" "$tmp/e1"
check "bad type: no output" no_file "$tmp/bad.gguf"
"$kiln" quantize "$tmp/nope.gguf" "$tmp/bad.gguf" q8_0 2>"$tmp/e2"; rc=$?
check "missing input: exit 1" test $rc -eq 1
check "missing input: message names it" grep -q "nope.gguf" "$tmp/e2"
check "missing input: no output" no_file "$tmp/bad.gguf"
printf 'not a model at all, just text\n' >"$tmp/text.gguf"
"$kiln" quantize "$tmp/text.gguf" "$tmp/bad.gguf" q8_0 2>"$tmp/e3"; rc=$?
check "non-GGUF input: exit 1" test $rc -eq 1
check "non-GGUF input: message" grep -qi "gguf" "$tmp/e3"
check "non-GGUF input: no output" no_file "$tmp/bad.gguf"
"$kiln" quantize "$tmp/tiny.gguf" "$tmp/no/such/dir/out.gguf" q8_0 2>"$tmp/e4"; rc=$?
check "unwritable output: exit 1 with message" bash -c "[ $rc -eq 1 ] && grep -q 'out.gguf' '$tmp/e4'"
"$kiln" quantize --random gpt-5 "$tmp/bad.gguf" q8_0 2>"$tmp/e5"; rc=$?
check "unknown shape: refused" bash -c "[ $rc -ne 0 ] && grep -q \"unknown shape 'gpt-5'\" '$tmp/e5'"
check "unknown shape: no output" no_file "$tmp/bad.gguf"
"$kiln" bench -m "$tmp/nope.gguf" 2>"$tmp/e6"; rc=$?
check "bench on a missing model: exit 1" test $rc -eq 1

# 5. a real shape (~145 MB at q8_0; skipped under sanitizers, where it is slow)
if [ -z "${KILN_SANITIZE:-}" ]; then
  "$kiln" quantize --random smollm-135m "$tmp/smol.gguf" q8_0 2>/dev/null
  "$kiln" info "$tmp/smol.gguf" >"$tmp/smol.info"
  check "smollm-135m: 30 layers of 576" bash -c "grep -q 'llama.block_count = 30 ' '$tmp/smol.info' && grep -q 'llama.embedding_length = 576 ' '$tmp/smol.info'"
  check "smollm-135m: vocab 49152" grep -qE "^  token_embd\.weight +q8_0 +\[576, 49152\]" "$tmp/smol.info"
  gen "$tmp/smol.gguf" 2 >"$tmp/s1.txt"; gen "$tmp/smol.gguf" 1 >"$tmp/s2.txt"
  check "smollm-135m: generate deterministic" bash -c "[ -s '$tmp/s1.txt' ] && cmp -s '$tmp/s1.txt' '$tmp/s2.txt'"
  rm -f "$tmp/smol.gguf"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# The real stories260K model end to end through the kiln program: the published
# greedy output, thread-count determinism, info, and clear errors.
set -uo pipefail
dir=${KILN_SHARED:-../shared}/models/stories260K
[ -f "$dir/stories260K.bin" ] || { echo "SKIP: $dir missing"; exit 77; }
kiln=${KILN_BIN:?}
tmp=${KILN_TMP:-/tmp}/stories260k.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0; pass=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); else echo "FAIL: $name"; fail=$((fail+1)); fi
}
m=(-m "$dir/stories260K.bin" --tokenizer "$dir/tok512.bin")

# 1. greedy decoding reproduces llama2.c's published output exactly
"$kiln" generate "${m[@]}" --temperature 0 -n 256 >"$tmp/greedy.txt" 2>"$tmp/greedy.err"
check "greedy output matches expected_greedy.txt" cmp -s "$tmp/greedy.txt" "$dir/expected_greedy.txt"
check "speeds reported on stderr" grep -q "tok/s" "$tmp/greedy.err"

# stop strings end the text before the match
"$kiln" generate "${m[@]}" --temperature 0 -n 256 --stop "Lily" >"$tmp/stop.txt" 2>"$tmp/stop.err"
check "stop string ends the text before it" test "$(cat "$tmp/stop.txt")" = "Once upon a time, there was a little girl named "
check "stop reason reported" grep -q "stop: stop" "$tmp/stop.err"

# 2. same seed, same text, whatever the thread count
for t in 1 2; do
  "$kiln" generate "${m[@]}" -p "Lily saw a" --temperature 0.9 --seed 7 -n 80 -t $t >"$tmp/s$t.txt" 2>/dev/null
done
check "sampled text identical with 1 and 2 threads" cmp -s "$tmp/s1.txt" "$tmp/s2.txt"
ids=$("$kiln" tokenize "${m[@]}" "Once upon a time, there was a little dog named Max. He liked to run.")
for t in 1 2; do
  "$kiln" eval "${m[@]}" --ids "$ids" --logits-out "$tmp/l$t.bin" -t $t >"$tmp/e$t.txt" 2>/dev/null
done
check "logits bit-identical with 1 and 2 threads" cmp -s "$tmp/l1.bin" "$tmp/l2.bin"
check "logits file has 512 floats" test "$(stat -c %s "$tmp/l1.bin")" -eq 2048
check "perplexity printed" grep -q "^perplexity: " "$tmp/e1.txt"

# 3. info
"$kiln" info "$dir/stories260K.bin" >"$tmp/info.txt" 2>&1
check "info shows the tensor table" grep -q "layers.0.attention.wq.weight" "$tmp/info.txt"

# 4. errors: clear message, non-zero exit, no crash
"$kiln" generate -m "$dir/nope.bin" >/dev/null 2>"$tmp/err1"; rc=$?
check "missing model: exit 1" test $rc -eq 1
check "missing model: message names the file" grep -q "nope.bin" "$tmp/err1"
"$kiln" eval "${m[@]}" --ids "1 2 3 4 5 6 7 8 9 10" --ctx 4 >/dev/null 2>"$tmp/err2"; rc=$?
check "eval past the context: exit 1" test $rc -eq 1
check "eval past the context: says so" grep -qi "context" "$tmp/err2"
"$kiln" eval "${m[@]}" --ids "1 99999" >/dev/null 2>"$tmp/err3"; rc=$?
check "token id outside vocabulary: exit 1" test $rc -eq 1
check "token id outside vocabulary: says so" grep -qi "vocabulary" "$tmp/err3"
"$kiln" generate "${m[@]}" --top-k abc >/dev/null 2>"$tmp/err4"; rc=$?
check "bad option value: exit 2" test $rc -eq 2
"$kiln" generate --help >/dev/null; rc=$?
check "--help exits 0" test $rc -eq 0
for c in generate tokenize eval info; do
  "$kiln" $c --help >/dev/null || { echo "FAIL: $c --help"; fail=$((fail+1)); }
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

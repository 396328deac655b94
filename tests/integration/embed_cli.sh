#!/usr/bin/env bash
# kiln embed end to end on a random-weight BERT (bert-tiny shape): one JSON object per
# input, texts from arguments or stdin lines giving the same vectors, thread counts
# bit-identical, --similarity, truncation reported, and clear errors.
set -uo pipefail
kiln=${KILN_BIN:?}
tmp=${KILN_TMP:-/tmp}/embed_cli.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail=0; pass=0
check() { # name, command...
  local name=$1; shift
  if "$@"; then pass=$((pass+1)); else echo "FAIL: $name"; fail=$((fail+1)); fi
}
not() { ! "$@"; }

"$kiln" quantize --random bert-tiny "$tmp/bert.gguf" f32 2>/dev/null
check "random bert written" test -s "$tmp/bert.gguf"
m="$tmp/bert.gguf"

"$kiln" embed -m "$m" "hello world" "a second, longer sentence." >"$tmp/args.jsonl" 2>"$tmp/err"
check "two inputs: exit 0" test $? -eq 0
check "two inputs: two lines" test "$(wc -l <"$tmp/args.jsonl")" -eq 2
check "objects as documented, unit vectors of 128" python3 -c '
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["index"] for r in rows] == [0, 1], rows
assert rows[0]["tokens"] == 4 and rows[0]["truncated"] is False
for r in rows:
    v = r["embedding"]
    assert len(v) == 128 and abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-5
' "$tmp/args.jsonl"
printf 'hello world\r\na second, longer sentence.\n' | "$kiln" embed -m "$m" -t 1 >"$tmp/stdin.jsonl" 2>/dev/null
check "stdin lines (CRLF), 1 thread: the same bytes" cmp -s "$tmp/args.jsonl" "$tmp/stdin.jsonl"

"$kiln" embed -m "$m" --similarity "hello world" "something else entirely" "hello world" >"$tmp/sim.txt" 2>/dev/null
check "similarity: 3 rows, diagonal and duplicates 1" python3 -c '
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
assert len(m) == 3 and all(len(r) == 3 for r in m)
assert all(abs(m[i][i] - 1) < 1e-5 for i in range(3)) and abs(m[0][2] - 1) < 1e-5
assert m[0][1] < 0.999999 and m[0][1] == m[1][0]
' "$tmp/sim.txt"

python3 -c 'print("word " * 800)' | "$kiln" embed -m "$m" >"$tmp/long.jsonl" 2>"$tmp/long.err"
check "overlong input: truncated to 512 and said so" python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read())
assert r["tokens"] == 512 and r["truncated"] is True, (r["tokens"], r["truncated"])
' "$tmp/long.jsonl"
check "overlong input: a warning on stderr" grep -q "truncated" "$tmp/long.err"

"$kiln" quantize --random tiny "$tmp/llama.gguf" f32 2>/dev/null
"$kiln" embed -m "$tmp/llama.gguf" "x" >"$tmp/out" 2>"$tmp/err"
check "a llama model: exit 1" test $? -eq 1
check "a llama model: says it is not an embedding model" grep -q "not an embedding model" "$tmp/err"
"$kiln" embed -m "$tmp/missing.gguf" "x" 2>"$tmp/err"
check "missing model: exit 1" test $? -eq 1
check "missing model: names the file" grep -q "missing.gguf" "$tmp/err"
"$kiln" embed "x" 2>/dev/null
check "no -m: usage error" test $? -eq 2
head -c 4000 "$m" >"$tmp/trunc.gguf"
"$kiln" embed -m "$tmp/trunc.gguf" "x" 2>"$tmp/err"
check "truncated file: exit 1 with a message" test $? -eq 1 -a -s "$tmp/err"

# an embedding program of the config, run with kiln run: the same line as kiln embed
mkdir -p "$tmp/models"
cp "$m" "$tmp/models/embed.gguf"
echo '{"programs": {"search": {"kind": "embedding", "model": "embed"}}}' >"$tmp/kiln.json"
"$kiln" run search "hello world" --models "$tmp/models" --config "$tmp/kiln.json" --data "$tmp/data" -q \
  >"$tmp/run.jsonl" 2>"$tmp/run.err"
head -1 "$tmp/args.jsonl" >"$tmp/first.jsonl"
check "kiln run of an embedding program: kiln embed's line" cmp -s "$tmp/run.jsonl" "$tmp/first.jsonl"

echo "embed_cli: $pass passed, $fail failed"
test "$fail" -eq 0

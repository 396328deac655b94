#!/usr/bin/env bash
# `kiln run PROGRAM PROMPT` (a preset, locally: text, and an image program on a
# random sd-tiny model) and `kiln jobs list|show|wait|cancel` against a running server.
set -uo pipefail
dir=${KILN_SHARED:-../shared}/models
[ -f "$dir/stories260K/stories260K.bin" ] || { echo "SKIP: $dir/stories260K missing"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
kiln=${KILN_BIN:?}
tmp=${KILN_TMP:-/tmp}/cli_jobs.$$
mkdir -p "$tmp"
. "$(dirname "$0")/lib/serve.bash"
trap 'stop_kiln_serve; rm -rf "$tmp"' EXIT
fail=0; pass=0
check() { local name=$1; shift; if "$@"; then pass=$((pass+1)); else echo "FAIL: $name"; fail=$((fail+1)); fi; }

cat >"$tmp/kiln.json" <<'JSON'
{"programs": {"story": {"model": "stories260K", "template": "Once upon a time, {prompt}",
                        "max_tokens": 24, "temperature": 0}}}
JSON
# kiln run: the program's template and defaults, locally
"$kiln" run story "there was" --config "$tmp/kiln.json" --models "$dir" >"$tmp/run.txt" 2>"$tmp/run.err"
check "kiln run succeeds" test $? -eq 0
check "kiln run streams the program's text" grep -q "little girl" "$tmp/run.txt"
"$kiln" run nope "x" --config "$tmp/kiln.json" --models "$dir" >/dev/null 2>"$tmp/run2.err"
check "kiln run: unknown program is an error" test $? -eq 1
check "kiln run: the error names it" grep -q "no program named 'nope'" "$tmp/run2.err"
echo '{"programs": {"a": {"model": "stories260K", "temprature": 1}}}' >"$tmp/bad.json"
"$kiln" run a "x" --config "$tmp/bad.json" --models "$dir" >/dev/null 2>"$tmp/run3.err"
check "kiln run: a bad config names the key" grep -q "unknown key 'temprature'" "$tmp/run3.err"

# kiln run: an image program stores its PNGs under --data and prints one line per image
mkdir -p "$tmp/img-models"
"$kiln" quantize --random sd-tiny "$tmp/img-models/sd" f16 -q
echo '{"programs": {"pic": {"kind": "image", "model": "sd", "template": "{prompt}, detailed", "steps": 2, "n": 2}}}' \
  >"$tmp/img.json"
"$kiln" run pic "a cat" --config "$tmp/img.json" --models "$tmp/img-models" --data "$tmp/img-data" -s 8 -q \
  >"$tmp/img.out" 2>"$tmp/img.err"
check "kiln run image program: exit 0" test $? -eq 0
check "kiln run image program: seeds 8 and 9, files under --data" python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert [l["seed"] for l in lines] == [8, 9], lines
for l in lines:
    d = open(l["file"], "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n" and b"a cat, detailed" in d, l
' "$tmp/img.out"
"$kiln" run pic "a cat" --config "$tmp/img.json" --models "$tmp/img-models" >/dev/null 2>"$tmp/img2.err"
check "kiln run image program without --data: refused, saying why" grep -q "give --data DIR" "$tmp/img2.err"

# kiln jobs against a server
start_kiln_serve --models "$dir" --data "$tmp/data" --config "$tmp/kiln.json"
id=$(curl -s "$url/v1/jobs" -d '{"program": "story", "params": {"prompt": "a cat"}}' | sed -n 's/.*"id":"\(job_[0-9a-f]*\)".*/\1/p')
check "job submitted" test -n "$id"
"$kiln" jobs wait "$id" --url "$url" >"$tmp/wait.json" 2>/dev/null
check "kiln jobs wait: completed" grep -q '"state":[[:space:]]*"completed"' "$tmp/wait.json"
"$kiln" jobs show "$id" --url "$url" >"$tmp/show.json"
check "kiln jobs show" grep -q "\"$id\"" "$tmp/show.json"
"$kiln" jobs list --url "$url" --state completed >"$tmp/list.txt"
check "kiln jobs list" grep -q "$id *completed" "$tmp/list.txt"
"$kiln" jobs cancel "$id" --url "$url" >"$tmp/cancel.json"
check "kiln jobs cancel on a finished job leaves it completed" grep -q '"completed"' "$tmp/cancel.json"
"$kiln" jobs show job_0000000000000000 --url "$url" >/dev/null 2>"$tmp/nf.err"
check "kiln jobs show: unknown id fails" test $? -ne 0
check "kiln jobs show: says why" grep -q "HTTP 404" "$tmp/nf.err"
"$kiln" jobs list --url http://127.0.0.1:1 >/dev/null 2>"$tmp/down.err"
check "kiln jobs: unreachable server is a clear error" grep -q "Couldn't connect\|Could not connect\|refused" "$tmp/down.err"
echo "cli_jobs: $pass passed, $fail failed"
exit $((fail > 0))

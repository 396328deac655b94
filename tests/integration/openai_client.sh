#!/usr/bin/env bash
# The official `openai` npm client, installed from the npm registry, against
# `kiln serve` running stories260K: streamed and non-streamed chat completions; and
# images.generate on a random-weight sd-tiny model (b64_json and url).
# Skips (77) when node/npm are missing or the registry cannot be reached.
set -uo pipefail
dir=${KILN_SHARED:-../shared}/models
[ -f "$dir/stories260K/stories260K.bin" ] || { echo "SKIP: $dir/stories260K missing"; exit 77; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm not installed"; exit 77; }
kiln=${KILN_BIN:?}
src=$(cd "$(dirname "$0")" && pwd)
tmp=${KILN_TMP:-/tmp}/openai_client.$$
npmdir=${KILN_TMP:-/tmp}/openai-npm   # kept between runs: installing takes seconds, not every time
mkdir -p "$tmp" "$npmdir"
. "$(dirname "$0")/lib/serve.bash"
trap 'stop_kiln_serve; rm -rf "$tmp"' EXIT

if [ ! -f "$npmdir/node_modules/openai/package.json" ]; then
  (cd "$npmdir" && [ -f package.json ] || echo '{"private":true}' >package.json
   timeout 180 npm install --no-audit --no-fund --silent openai >/dev/null 2>"$tmp/npm.err") ||
    { echo "SKIP: cannot install openai from the npm registry: $(tail -2 "$tmp/npm.err")"; exit 77; }
fi
echo "openai client $(node -p "require('$npmdir/node_modules/openai/package.json').version")"

# the models: stories260K and a random-weight Stable Diffusion model for images.generate
mkdir -p "$tmp/models"
cp -r "$dir/stories260K" "$tmp/models/"
"$kiln" quantize --random sd-tiny "$tmp/models/sd" f16 -q || { echo "FAIL: cannot write sd-tiny"; exit 1; }
start_kiln_serve --models "$tmp/models" --data "$tmp/data" --api-key test-key
# The script imports "openai": run it from a copy inside the install's folder so Node
# resolves the package there.
cp "$src/js/openai_client.mjs" "$npmdir/"
node "$npmdir/openai_client.mjs" "http://127.0.0.1:$port/v1"

#!/usr/bin/env bash
# POST /v1/embeddings end to end (tests/integration/py/server_embed.py, Python standard library).
py=/usr/bin/python3
[ -x $py ] || { echo "SKIP: $py missing"; exit 77; }
exec $py "$(dirname "$0")/py/server_embed.py"

#!/usr/bin/env bash
# Durability of the job store across SIGKILL (tests/integration/py/server_crash.py).
py=/usr/bin/python3
[ -x $py ] || { echo "SKIP: $py missing"; exit 77; }
exec $py "$(dirname "$0")/py/server_crash.py"

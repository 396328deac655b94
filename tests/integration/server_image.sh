#!/usr/bin/env bash
# Image jobs and POST /v1/images/generations end to end (tests/integration/py/server_image.py,
# Python standard library).
py=/usr/bin/python3
[ -x $py ] || { echo "SKIP: $py missing"; exit 77; }
exec $py "$(dirname "$0")/py/server_image.py"

#!/bin/bash
# chat_templates.sh — every chat template of $KILN_SHARED/chat-templates rendered by
# `kiln template` and by python jinja2 (configured like transformers) must agree byte
# for byte over several message sets; see chat_templates.py. Skips (77) without
# Debian's python3-jinja2 at /usr/bin/python3 or without the templates.
set -u
PY=/usr/bin/python3
DIR="${KILN_SHARED:-../shared}/chat-templates"
if ! [ -x "$PY" ] || ! "$PY" -c 'import jinja2' 2>/dev/null; then
    echo "skip: /usr/bin/python3 with jinja2 (Debian python3-jinja2) is needed"
    exit 77
fi
if ! ls "$DIR"/*.jinja >/dev/null 2>&1; then
    echo "skip: no chat templates in $DIR"
    exit 77
fi
exec "$PY" "${KILN_SRC:-.}/tests/integration/chat_templates.py" "${KILN_BIN:-build/kiln}" "$DIR" \
    "${KILN_TMP:-/tmp}/chat_templates"

#!/usr/bin/env bash
# Creates or refreshes the project virtualenv (.venv) with the pinned emulator and its
# test tools. Keyed on requirements.txt: an unchanged file means no pip call.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
req="$root/tests/testenv/moto/requirements.txt"
venv="$root/.venv"
want="$(sha256sum "$req" | cut -c1-16)"
if [[ -x "$venv/bin/python" && "$(cat "$venv/.requirements-key" 2>/dev/null)" == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check -q -r "$req"
echo "$want" > "$venv/.requirements-key"

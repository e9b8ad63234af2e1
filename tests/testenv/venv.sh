#!/usr/bin/env bash
# Creates or refreshes the project virtualenv (.venv) with the pinned emulator, its test
# tools, and the Argo CD health check tests' Lua interpreter. Keyed on the requirements
# files: unchanged files mean no pip call.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
reqs=("$root/tests/testenv/moto/requirements.txt" "$root/tests/argocd/requirements.txt")
venv="$root/.venv"
want="$(cat "${reqs[@]}" | sha256sum | cut -c1-16)"
if [[ -x "$venv/bin/python" && "$(cat "$venv/.requirements-key" 2>/dev/null)" == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --disable-pip-version-check -q "${reqs[@]/#/--requirement=}"
echo "$want" > "$venv/.requirements-key"

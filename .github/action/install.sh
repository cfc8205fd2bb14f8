#!/usr/bin/env bash
# The GitHub Action's install step: a venv of its own under $RUNNER_TEMP, made with the Python that
# actions/setup-python gave ($SETUP_PYTHON), so that neither the runner's Python nor the job's packages are touched.
# Writes the venv's interpreter to the step's output `python` (bin/python, or Scripts/python.exe on Windows).
set -euo pipefail

: "${SETUP_PYTHON:?the action needs the Python that actions/setup-python set up}"
: "${ACTION_PATH:?the action needs its own path}"
venv="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/async-uploader-venv"

"$SETUP_PYTHON" -m venv "$venv"
python="$venv/bin/python"
if [ ! -x "$python" ]; then
  python="$venv/Scripts/python.exe"  # Windows
fi
"$python" -m pip install --quiet --disable-pip-version-check "$ACTION_PATH"
echo "python=$python" >> "${GITHUB_OUTPUT:?the runner sets GITHUB_OUTPUT}"

#!/usr/bin/env bash
# The GitHub Action's step: inputs come as INPUT_* variables; credentials come from the environment (for example
# aws-actions/configure-aws-credentials with OIDC) and are never echoed. Outputs and the job summary are written
# by `--summary-format github` to $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY. $PYTHON: the interpreter the install
# step set up (install.sh); `python` on the PATH if unset (never `python3`, which Windows runners lack).
set -euo pipefail

: "${INPUT_PATH:?the action needs 'path'}"
: "${INPUT_DESTINATION:?the action needs 'destination'}"
report="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/async-uploader-report-$$.jsonl"

args=(upload "$INPUT_PATH" "$INPUT_DESTINATION" --report "$report" --summary-format github --no-progress
      --concurrency "${INPUT_CONCURRENCY:-64}")
if [ -n "${INPUT_ENDPOINT_URL:-}" ]; then
  args+=(--endpoint-url "$INPUT_ENDPOINT_URL")
fi
while IFS= read -r glob; do  # an include given: the CLI takes only what the includes name
  if [ -n "$glob" ]; then args+=(--include "$glob"); fi
done <<< "${INPUT_INCLUDE:-}"
while IFS= read -r glob; do
  if [ -n "$glob" ]; then args+=(--exclude "$glob"); fi
done <<< "${INPUT_EXCLUDE:-}"

while IFS= read -r rule; do
  if [ -n "$rule" ]; then args+=(--header-rule "$rule"); fi
done <<< "${INPUT_HEADER_RULES:-}"
if [ -n "${INPUT_CACHE_CONTROL:-}" ]; then args+=(--cache-control "$INPUT_CACHE_CONTROL"); fi
if [ -n "${INPUT_SSE:-}" ]; then args+=(--sse "$INPUT_SSE"); fi
if [ -n "${INPUT_SSE_KMS_KEY_ID:-}" ]; then args+=(--sse-kms-key-id "$INPUT_SSE_KMS_KEY_ID"); fi
if [ -n "${INPUT_STORAGE_CLASS:-}" ]; then args+=(--storage-class "$INPUT_STORAGE_CLASS"); fi

# A runner's checkout gives every file a new mtime: the content decides by default.
args+=(--compare "${INPUT_COMPARE:-checksum}")
if [ "${INPUT_DELETE:-false}" = "true" ]; then args+=(--delete); fi
if [ -n "${INPUT_MAX_DELETE:-}" ]; then args+=(--max-delete "$INPUT_MAX_DELETE"); fi
if [ "${INPUT_DRY_RUN:-false}" = "true" ]; then args+=(--dry-run); fi
# 'args' is split as a shell would split it, by Python's shlex, never evaluated: no expansion, no command runs.
if [ -n "${INPUT_ARGS:-}" ]; then
  words="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/async-uploader-args-$$"
  PYTHONIOENCODING=utf-8 "${PYTHON:-python}" - "$INPUT_ARGS" > "$words" <<'PY'
import shlex, sys
try:
    words = shlex.split(sys.argv[1])
except ValueError as exc:
    sys.exit(f"error: the action's 'args' cannot be split: {exc}")
sys.stdout.write("".join(word + "\0" for word in words))
PY
  while IFS= read -r -d '' word; do args+=("$word"); done < "$words"
  rm -f "$words"
fi

# The runner's log is UTF-8: names print as they are, also where Python would pick the ANSI code page (Windows).
export PYTHONIOENCODING="${PYTHONIOENCODING:-utf-8}"
exec "${PYTHON:-python}" -m async_uploader "${args[@]}"

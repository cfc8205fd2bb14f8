#!/usr/bin/env bash
# The GitHub Action's step: inputs come as INPUT_* variables; credentials come from the environment (for example
# aws-actions/configure-aws-credentials with OIDC) and are never echoed. Outputs and the job summary are written
# by `--summary-format github` to $GITHUB_OUTPUT and $GITHUB_STEP_SUMMARY.
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

exec "${PYTHON:-python3}" -m async_uploader "${args[@]}"

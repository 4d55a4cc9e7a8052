#!/usr/bin/env bash
# Runs small problems of every kernel under compute-sanitizer's memcheck, racecheck and synccheck
# (GPU host; from the project root). Kernels are compiled once beforehand into the disk cache so the
# sanitized runs only load them.
#   bash tools/sanitize.sh            # or: bash .gpu/boot.sh bash tools/sanitize.sh
set -uo pipefail
python3 tools/sanitize_cases.py || exit 1
status=0
for tool in memcheck racecheck synccheck; do
  echo "== compute-sanitizer --tool $tool"
  compute-sanitizer --tool "$tool" --target-processes all --print-limit 20 \
    python3 tools/sanitize_cases.py 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Error|error|calc_diff|cases" || true
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status

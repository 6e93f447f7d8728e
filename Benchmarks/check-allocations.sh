#!/usr/bin/env bash
# Fails when a benchmark allocated more per call than Benchmarks/Thresholds allows.
# Reads the text output of `swift package benchmark` (its "Malloc (total)" row, worst sample)
# and, for every Thresholds/<target>.<benchmark name>.p90.json, its "mallocCountTotal".
set -euo pipefail
cd "$(dirname "$0")"
output=${1:-results/latest.txt}
status=0
for file in Thresholds/*.json; do
  name=$(basename "$file" .p90.json)
  name=${name#*.}            # drop the target name; the file name has spaces as underscores
  allowed=$(sed -n 's/.*"mallocCountTotal" *: *\([0-9]*\).*/\1/p' "$file")
  worst=$(awk -v name="$name" '
    { line = $0; gsub(/ /, "_", line) }
    line == name { found = 1; next }
    found && /Malloc \(total\)/ { gsub(/[│ ]+/, " "); n = split($0, f, " "); print f[n - 1]; exit }
  ' "$output")
  if [[ -z $worst ]]; then
    echo "allocation check: no result for '$name'"; status=1
  elif (( worst > allowed )); then
    echo "allocation check: '$name' allocated $worst times per sample, allowed $allowed"; status=1
  else
    echo "allocation check: '$name' $worst mallocs (allowed $allowed)"
  fi
done
exit $status

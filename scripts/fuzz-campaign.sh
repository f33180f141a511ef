#!/usr/bin/env bash
# Fuzz campaign (issue 21 item 5): runs every fuzz target of the module for
# FUZZTIME each, one at a time (GOMAXPROCS=FUZZPROCS, -parallel FUZZPROCS: the
# machine is shared), and writes one table row per target (package, target,
# execs, new corpus entries, result) between the markers in docs/fuzzing.md.
# A failing target leaves its input in the package's testdata/fuzz/<target>/, as
# `go test -fuzz` does; the campaign goes on and exits non-zero at the end.
# Usage: scripts/fuzz-campaign.sh [target-regex]   (make fuzz-campaign)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
FUZZPROCS=${FUZZPROCS:-1}
OUT=${FUZZ_OUT:-docs/fuzzing.md}
filter=${1:-.}

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
rows=()
failed=0
start=$(date -u +%Y-%m-%dT%H:%MZ)
# Every fuzz target: "dir name", sorted, from the committed test files.
mapfile -t targets < <(git ls-files '*_test.go' | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort -u | grep -E "$filter" || true)
if [ ${#targets[@]} -eq 0 ]; then
	echo "no fuzz target matches $filter" >&2
	exit 1
fi
for t in "${targets[@]}"; do
	dir=${t% *} name=${t#* }
	log="$logdir/$name.log"
	t0=$(date +%s)
	if GOMAXPROCS=$FUZZPROCS $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" -parallel "$FUZZPROCS" "./$dir" >"$log" 2>&1; then
		result=pass
	else
		result=FAIL
		failed=1
		tail -n 30 "$log" >&2
	fi
	# The fuzzer's last progress line: "fuzz: elapsed: 20s, execs: 123 (6/sec), new interesting: 2 (total: 9)".
	last=$(grep -E '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
	execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
	fresh=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
	if [ "$result" = FAIL ]; then
		why=$( (grep -m1 -E '^\s+[A-Za-z0-9_]+\.go:[0-9]+: |^panic: ' "$log" || true) | sed -E 's/^\s+//; s/\|/\\|/g' | cut -c1-160)
		input=$(sed -nE 's/.*Failing input written to (.*)$/\1/p' "$log" | head -n 1)
		result="FAIL: ${why:-see log}${input:+ (input: $dir/$input)}"
	fi
	row="| \`$dir\` | \`$name\` | ${execs:-?} | ${fresh:-?} | $(($(date +%s) - t0)) s | $result |"
	echo "$row"
	rows+=("$row")
done

table=$(
	echo "<!-- fuzz-campaign: begin (scripts/fuzz-campaign.sh writes this block) -->"
	echo "Campaign of $start, \`FUZZTIME=$FUZZTIME\` per target, GOMAXPROCS=$FUZZPROCS, $(go env GOVERSION), $(nproc) CPUs shared.${FUZZ_NOTE:+ $FUZZ_NOTE}"
	echo
	echo "| package | target | execs | new corpus entries | wall time | result |"
	echo "|---|---|---:|---:|---:|---|"
	printf '%s\n' "${rows[@]}"
	echo "<!-- fuzz-campaign: end -->"
)
if [ ! -f "$OUT" ] || ! grep -q '<!-- fuzz-campaign: begin' "$OUT"; then
	printf '\n%s\n' "$table" >>"$OUT"
else
	# Replace the block between the markers, keep the rest of the page.
	TABLE="$table" awk '
		/<!-- fuzz-campaign: begin/ { print ENVIRON["TABLE"]; skip = 1; next }
		/<!-- fuzz-campaign: end -->/ { skip = 0; next }
		!skip { print }
	' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
fi
echo "wrote $OUT"
exit $failed

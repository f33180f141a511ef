#!/usr/bin/env bash
# Fuzz campaign (issue 21 item 5): runs every fuzz target of the module for
# FUZZTIME each (GOMAXPROCS=FUZZPROCS, -parallel FUZZPROCS per target, FUZZJOBS
# targets at a time) and keeps one table row per target (package, target, fuzz
# time, execs, new corpus entries, wall time, result, date and Go version)
# between the markers in docs/fuzzing.md. Rows of targets not run this time are
# kept, so a campaign can be run in slices; each finished target updates the
# table at once.
#
# A failing target leaves its input in the package's testdata/fuzz/<target>/,
# as `go test -fuzz` does; the campaign goes on and exits non-zero at the end.
#
# Environment:
#   FUZZTIME      per target (10m)
#   FUZZJOBS      targets fuzzed at once (1); keep FUZZJOBS*FUZZPROCS <= cores
#   FUZZPROCS     workers per target (1)
#   FUZZMINIMIZE  -fuzzminimizetime (5s): Go minimizes every new interesting
#                 input for up to 60 s by default, which for targets with
#                 large seeds left most of a run minimizing, not fuzzing
#   FUZZ_MISSING  1: skip targets whose row already shows a pass at FUZZTIME
#   FUZZ_DEADLINE a UTC time (2026-12-02T23:10Z): start no target that would
#                 end after it
# Usage: scripts/fuzz-campaign.sh [target-regex]   (make fuzz-campaign)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10m}
FUZZJOBS=${FUZZJOBS:-1}
FUZZPROCS=${FUZZPROCS:-1}
FUZZMINIMIZE=${FUZZMINIMIZE:-5s}
OUT=${FUZZ_OUT:-docs/fuzzing.md}
filter=${1:-.}

seconds() { # 90s, 10m, 1h -> seconds
	local v=${1%[smh]}
	case $1 in *h) echo $((v * 3600)) ;; *m) echo $((v * 60)) ;; *) echo "$v" ;; esac
}
deadline=0
if [ -n "${FUZZ_DEADLINE:-}" ]; then
	deadline=$(date -u -d "${FUZZ_DEADLINE%Z}" +%s)
fi

logdir=$(mktemp -d)
trap 'rm -rf "$logdir"' EXIT
goversion=$($GO env GOVERSION)

# Every fuzz target: "dir name" from the committed test files, the product's
# packages first, the fakes in examples/ last.
mapfile -t targets < <(git ls-files '*_test.go' | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(f \*testing\.F)' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#\1 \2#' | sort -u | grep -E "$filter" |
	awk '{ print ($1 ~ /^examples\// ? 1 : 0) " " $0 }' | sort -s -k1,1n | cut -d' ' -f2- || true)
if [ ${#targets[@]} -eq 0 ]; then
	echo "no fuzz target matches $filter" >&2
	exit 1
fi

# done_already: the table has a passing row for "dir name" at FUZZTIME.
done_already() {
	grep -qF "| \`$1\` | \`$2\` | $FUZZTIME | " "$OUT" 2>/dev/null &&
		grep -F "| \`$1\` | \`$2\` | $FUZZTIME | " "$OUT" | grep -q '| pass |'
}

# fuzz_one writes the target's row to $logdir/<dir>_<name>.row.
fuzz_one() {
	local dir=$1 name=$2 log="$logdir/${1//\//_}_$2.log" result t0 last execs fresh why input
	t0=$(date +%s)
	if GOMAXPROCS=$FUZZPROCS $GO test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" \
		-fuzzminimizetime "$FUZZMINIMIZE" -parallel "$FUZZPROCS" "./$dir" >"$log" 2>&1; then
		result=pass
	else
		result=FAIL
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
	echo "| \`$dir\` | \`$name\` | $FUZZTIME | ${execs:-?} | ${fresh:-?} | $(($(date +%s) - t0)) s | $result | $(date -u +%Y-%m-%d), $goversion |" \
		>"$logdir/${dir//\//_}_$name.row"
}

# write_table merges the finished rows into the block between the markers:
# one row per target, new rows replacing old ones, sorted by package and name.
write_table() {
	local rows
	rows=$( {
		[ -f "$OUT" ] && awk '/<!-- fuzz-campaign: begin/ { on = 1; next } /<!-- fuzz-campaign: end/ { on = 0 } on && /^\| `/' "$OUT"
		cat "$logdir"/*.row 2>/dev/null || true
	} | awk -F' \\| ' '{ key = $1 " " $2; gsub(/[`|]/, "", key); sub(/^ +/, "", key); row[key] = $0 }
		END { for (k in row) print k "\t" row[k] }' | LC_ALL=C sort -t$'\t' -k1,1 | cut -f2-)
	local table
	table=$(
		echo "<!-- fuzz-campaign: begin (scripts/fuzz-campaign.sh writes this block) -->"
		echo "| package | target | fuzz time | execs | new corpus entries | wall time | result | run |"
		echo "|---|---|---|---:|---:|---:|---|---|"
		printf '%s\n' "$rows"
		echo "<!-- fuzz-campaign: end -->"
	)
	if [ ! -f "$OUT" ] || ! grep -q '<!-- fuzz-campaign: begin' "$OUT"; then
		printf '\n%s\n' "$table" >>"$OUT"
	else
		TABLE="$table" awk '
			/<!-- fuzz-campaign: begin/ { print ENVIRON["TABLE"]; skip = 1; next }
			/<!-- fuzz-campaign: end -->/ { skip = 0; next }
			!skip { print }
		' "$OUT" >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
	fi
}

running=0
for t in "${targets[@]}"; do
	dir=${t% *} name=${t#* }
	if [ "${FUZZ_MISSING:-0}" = 1 ] && done_already "$dir" "$name"; then
		continue
	fi
	if [ "$running" -ge "$FUZZJOBS" ]; then
		wait -n || true
		running=$((running - 1))
		write_table
	fi
	if [ "$deadline" -gt 0 ] && [ $(($(date +%s) + $(seconds "$FUZZTIME") + 60)) -gt "$deadline" ]; then
		echo "FUZZ_DEADLINE: not starting $dir $name" >&2
		continue
	fi
	echo "fuzzing $dir $name for $FUZZTIME" >&2
	fuzz_one "$dir" "$name" &
	running=$((running + 1))
done
wait || true
write_table
cat "$logdir"/*.row 2>/dev/null || true
echo "wrote $OUT"
! grep -q '| FAIL' "$logdir"/*.row 2>/dev/null

#!/usr/bin/env bash
# Mutation check of the joints the unit tests must pin (issue 25): copies the
# working tree to a temporary directory, applies one small mutation at a time,
# runs the test named for it and expects it to FAIL within the timeout. Prints
# one table row per mutation; exits non-zero when a mutation survives, does not
# apply (the code moved: update its pattern), or the unmutated tests fail.
# Usage: scripts/mutants.sh [name-filter]   (make mutants)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
TIMEOUT=${MUTANT_TIMEOUT:-60s}
filter=${1:-}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git ls-files -z -co --exclude-standard | grep -zv '^\.venv' | tar --null -T - -cf - | tar -xf - -C "$tmp"

names=() files=() froms=() tos=() pkgs=() tests=()
# mutant NAME FILE FROM TO PACKAGE TEST-REGEX: FROM must occur on exactly one line of FILE.
mutant() { names+=("$1") files+=("$2") froms+=("$3") tos+=("$4") pkgs+=("$5") tests+=("$6"); }

mutant "main stream end does not release" extproc/server.go \
	'			p.finish()' '			// mutant: no p.finish()' \
	./extproc '^TestMainStreamClientGoneFreesReservation$'
mutant "usage report does not settle" extproc/report.go \
	'	p.finish()' '	// mutant: no p.finish()' \
	./extproc '^TestUsageReportSettlesHandedOverRequest$'
mutant "backend usage ignored at reconciliation" extproc/limits.go \
	'		used = ratelimit.Usage{Input: u.Input, Output: u.Output}' '		_ = u // mutant' \
	./extproc '^TestReconcileChargesBackendUsage$'
mutant "plan hands a translated request to the report" extproc/plan.go \
	'	pl.report = p.reports != nil && p.envoyReads && envoyReadsUsageOf(p.endpoint) && !pl.translate && (pl.settle || pl.usage)' '	pl.report = p.reports != nil && p.envoyReads && envoyReadsUsageOf(p.endpoint) && (pl.settle || pl.usage) // mutant' \
	./extproc '^TestResponsePlan$'
mutant "settlement ignores the shared stream meter" extproc/limits.go \
	'	case p.meter.stream != nil:' '	case false && p.meter.stream != nil: // mutant' \
	./extproc '^TestLimitsAndTelemetryReadOneMeter$'
mutant "drain ignores open ext_proc streams" cmd/streamgate/cli/drain.go \
	'		n = d.extProc.Active()' '		n = 0 // mutant' \
	./cmd/streamgate/cli '^TestDrainWaitsForOpenExtProcStreams$'
mutant "drain does not refuse new requests" cmd/streamgate/cli/drain.go \
	'		d.extProc.Drain()' '		// mutant: no d.extProc.Drain()' \
	./cmd/streamgate/cli '^TestDrainRefusesNewRequests$'
mutant "gate admits one stream over the limit" extproc/ratelimit/gate.go \
	'		if g.inUse[s.Key] >= s.Limit {' '		if g.inUse[s.Key] > s.Limit { // mutant' \
	./extproc/ratelimit '^(TestGateNeverAdmitsOverLimit|TestGateAdmitsUpToLimitThenQueues)$'
mutant "Finish does not free the slot" extproc/ratelimit/limiter.go \
	'		r.release()' '		// mutant: no r.release()' \
	./extproc/ratelimit '^TestFinishFreesConcurrencySlot$'
mutant "a failed reload applies the parts built before it" cmd/streamgate/cli/serve.go \
	'			applies = append(applies, apply)' '			apply() // mutant' \
	./cmd/streamgate/cli '^TestReloadFailingReloaderAppliesNothing$'
mutant "LF separator wins over an earlier CRLF" extproc/sse/scan.go \
	'	if j := bytes.IndexByte(head, '"'"'\r'"'"'); j >= 0 {' '	if j := bytes.IndexByte(head, '"'"'\r'"'"'); j >= 0 && i < 0 { // mutant' \
	./extproc/tokens '^TestStreamMeterFirstSeparatorWins$'

runtest() { (cd "$tmp" && timeout 300 "$GO" test -count=1 -timeout "$TIMEOUT" -run "$2" "$1" >"$tmp/.out" 2>&1); }

status=0
printf '| mutation | test | caught | test time | wall (with build) |\n|---|---|---|---|---|\n'
for i in "${!names[@]}"; do
	[[ -z $filter || ${names[$i]} == *"$filter"* ]] || continue
	f=$tmp/${files[$i]}
	cp "$f" "$tmp/.orig"
	if ! runtest "${pkgs[$i]}" "${tests[$i]}"; then
		printf '| %s | `%s` | **tests fail unmutated** | | |\n' "${names[$i]}" "${tests[$i]}"
		sed 's/^/    /' "$tmp/.out" >&2
		status=1
		continue
	fi
	if [[ $(grep -cxF -- "${froms[$i]}" "$f") != 1 ]]; then
		printf '| %s | `%s` | **did not apply** | | |\n' "${names[$i]}" "${tests[$i]}"
		status=1
		continue
	fi
	FROM=${froms[$i]} TO=${tos[$i]} perl -pi -e 's/^\Q$ENV{FROM}\E$/$ENV{TO}/' "$f"
	start=$EPOCHREALTIME
	if runtest "${pkgs[$i]}" "${tests[$i]}"; then
		caught="**no**"
		status=1
	elif grep -q 'build failed\|setup failed' "$tmp/.out"; then
		caught="**mutant does not compile**"
		status=1
	elif grep -q 'panic: test timed out' "$tmp/.out"; then
		caught="**only by a hang**"
		status=1
	else
		caught=yes
	fi
	# The failing test binary's run time, as go test reports it.
	took=$(sed -n 's/^FAIL[[:space:]][^[:space:]]*[[:space:]]\([0-9.]*s\)$/\1/p' "$tmp/.out" | head -1)
	printf '| %s | `%s` | %s | %s | %.1fs |\n' "${names[$i]}" "${tests[$i]}" "$caught" "${took:-?}" \
		"$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')"
	cp "$tmp/.orig" "$f"
done
exit $status

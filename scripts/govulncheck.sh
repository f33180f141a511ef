#!/usr/bin/env bash
# govulncheck with a pinned tool and a pinned vulnerability database, both
# from the Go module proxy (issue 21 item 6): the database is the
# golang.org/x/vulndb module's data/osv at VULNDB_VERSION, indexed by that
# module's own cmd/indexdb into a local v1 database (once per version, kept
# in the cache directory), and govulncheck reads it with -db file://. No
# other host is needed, so it runs where only the module proxy is reachable.
#
# Exit status: non-zero when the code calls a vulnerable symbol of a module
# it requires. Vulnerabilities of the Go standard library (which the
# toolchain building the code fixes, not go.mod) fail the run only with
# STRICT=1 (make govulncheck); make test prints them with the Go version
# that fixes them.
# Usage: scripts/govulncheck.sh   (make govulncheck; STRICT=0 in make test)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
VULNDB_VERSION=${VULNDB_VERSION:?pin it in the Makefile}
GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:?pin it in the Makefile}
STRICT=${STRICT:-1}
cache=${STREAMGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamgate}
db="$cache/vulndb-$VULNDB_VERSION"

if [ ! -f "$db/index/db.json" ]; then
	echo "govulncheck: indexing golang.org/x/vulndb@$VULNDB_VERSION into $db (once per version)"
	# Outside this module: the download and the tool touch neither go.mod nor go.sum.
	src=$(cd "$(mktemp -d)" && GOFLAGS= $GO mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -nE 's/^\s*"Dir": "(.*)",?$/\1/p')
	[ -d "$src/data/osv" ] || { echo "govulncheck: no data/osv in golang.org/x/vulndb@$VULNDB_VERSION" >&2; exit 1; }
	rm -rf "$db.tmp"
	mkdir -p "$cache"
	GOFLAGS= $GO run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$db.tmp"
	mv "$db.tmp" "$db"
fi
echo "govulncheck $GOVULNCHECK_VERSION, database golang.org/x/vulndb@$VULNDB_VERSION ($(ls "$db/ID" | grep -c "\.json$") entries), $($GO env GOVERSION)"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
# -format json exits 0 whatever it finds; the verdict is ours, below.
$GO run "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION" -db "file://$db" -format json ./... >"$out"
python3 - "$out" "$STRICT" <<'EOF'
import json, sys

path, strict = sys.argv[1], sys.argv[2] == "1"
dec, text, i = json.JSONDecoder(), open(path).read(), 0
osv, called = {}, {}
while True:
    while i < len(text) and text[i].isspace():
        i += 1
    if i >= len(text):
        break
    msg, i = dec.raw_decode(text, i)
    if "osv" in msg:
        osv[msg["osv"]["id"]] = msg["osv"].get("summary", "")
    f = msg.get("finding")
    # A finding whose first frame names a function is one the code calls.
    if f and f.get("trace") and f["trace"][0].get("function"):
        fr = f["trace"][0]
        called[(f["osv"], fr.get("module", "?"))] = (fr.get("version", "?"), f.get("fixed_version", "none"))
stdlib = {k: v for k, v in called.items() if k[1] == "stdlib"}
modules = {k: v for k, v in called.items() if k[1] != "stdlib"}
for (vid, mod), (ver, fixed) in sorted(called.items()):
    print(f"  {vid} {mod}@{ver} (fixed in {fixed}): {osv.get(vid, '')}")
print(f"govulncheck: {len(modules)} called vulnerabilities in required modules, {len(stdlib)} in the Go standard library")
if stdlib:
    need = sorted({v[1] for v in stdlib.values()}, key=lambda s: [int(x) if x.isdigit() else x for x in s.lstrip("v").replace("go", "").split(".")])
    print(f"govulncheck: the standard library findings are the toolchain's: build with Go {need[-1]} or later" +
          ("" if strict else " (not failing: STRICT=0)"))
sys.exit(1 if modules or (strict and stdlib) else 0)
EOF

package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docConfigPathRE finds config paths the docs write in backticks, such as
// `limits.queue.max_wait` or `backends[].picking.interval`.
var docConfigPathRE = regexp.MustCompile("`((?:gateway|extproc|xds|metrics|envoy|backends|models|auth|limits|telemetry)(?:\\[\\d*\\])?(?:\\.[a-z0-9_]+(?:\\[\\d*\\])?)+)")

// plainPath drops list and map markers: backends[0].x and backends[].x
// become backends.x.
func plainPath(p string) string {
	p = regexp.MustCompile(`\[\d*\]`).ReplaceAllString(p, "")
	return strings.ReplaceAll(p, ".<key>", "")
}

func TestConfigPathsInDocsExist(t *testing.T) {
	fields, _, err := configFields(root)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	maps := map[string]bool{} // map fields: any key may follow
	for _, f := range fields {
		known[plainPath(f.Path)] = true
		if strings.HasPrefix(f.Type, "map of") {
			maps[plainPath(f.Path)] = true
		}
	}
	cited := 0
	for _, file := range docFiles(t) {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, file)
		for n, line := range strings.Split(string(src), "\n") {
			for _, m := range docConfigPathRE.FindAllStringSubmatch(line, -1) {
				if notConfigPath(m[1]) {
					continue
				}
				cited++
				p := plainPath(m[1])
				if known[p] || underMap(p, maps) {
					continue
				}
				t.Errorf("%s:%d names the config field %s, which does not exist (docs/config.md lists them all)", rel, n+1, m[1])
			}
		}
	}
	if cited < 10 {
		t.Errorf("the docs name only %d config fields; the search is broken", cited)
	}
}

func underMap(p string, maps map[string]bool) bool {
	for m := range maps {
		if strings.HasPrefix(p, m+".") {
			return true
		}
	}
	return false
}

// notConfigPath tells apart names that only look like config paths: file
// names (limits.go, gateway.yaml) and Envoy's own names (envoy.filters.…).
func notConfigPath(p string) bool {
	for _, ext := range []string{".go", ".yaml", ".yml", ".md", ".json", ".proto"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	// xds.upstream_host_metadata is an Envoy attribute, not the xds section.
	for _, prefix := range []string{"envoy.filters.", "envoy.extensions.", "envoy.lb", "envoy.access_loggers.", "envoy.transport_sockets.", "xds.upstream_host_metadata"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	// The envoy section's fields are one level deep; deeper envoy.* names
	// are Envoy's own (envoy.load_balancing_policies.override_host).
	return strings.HasPrefix(p, "envoy.") && strings.Count(p, ".") > 1
}

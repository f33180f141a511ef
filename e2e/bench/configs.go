package bench

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"
)

//go:embed configs/everything.yaml
var everythingConfig string

// allConfigs lists every configuration's id in the order each load point
// runs them.
var allConfigs = []string{"a", "b", "c", "d", "e", "f", "g"}

// baselineID is the configuration every ratio and added latency is taken
// against: plain Envoy. It runs whatever -configs says.
const baselineID = "b"

// targetKind says how a configuration is served.
type targetKind int

const (
	direct        targetKind = iota // the backend itself, no gateway
	plainEnvoy                      // Envoy alone, the routes of a Streamgate config
	viaStreamgate                   // `streamgate run` with its Envoy
)

// parseConfigs turns a -configs value ("b,c,d,f") into the ids to run, in
// run order, adding the baseline (b) when it is missing.
func parseConfigs(s string) ([]string, error) {
	want := map[string]bool{baselineID: true}
	for _, id := range strings.Split(s, ",") {
		id = strings.TrimSpace(id)
		if !slices.Contains(allConfigs, id) {
			return nil, fmt.Errorf("cannot parse -configs %q: %q is not one of %s", s, id, strings.Join(allConfigs, ","))
		}
		want[id] = true
	}
	var out []string
	for _, id := range allConfigs {
		if want[id] {
			out = append(out, id)
		}
	}
	return out, nil
}

// configurations returns every configuration the harness knows, in run
// order; those not in o.Configs are marked skipped. full is the config
// template of (d) and (f), named fullName.
func configurations(o Options, full, fullName string, b *backend) []*target {
	const (
		passthroughName = "e2e/bench/configs/passthrough.yaml"
		translateName   = "e2e/bench/configs/translate.yaml"
		everythingName  = "e2e/bench/configs/everything.yaml"
	)
	ts := []*target{
		{ID: "a", Name: "backend directly", AsksUsage: true, kind: direct, url: "http://" + b.addr},
		{ID: "b", Name: "plain Envoy", Note: "same listener, routes and clusters (xds.StaticBootstrap), no ext_proc; the client sets the routing header",
			Config: passthroughName, AsksUsage: true, kind: plainEnvoy, template: passthroughConfig},
		{ID: "c", Name: "Envoy + Streamgate pass-through", Note: configLabel(passthroughConfig),
			Config: passthroughName, Binary: o.StreamgateBin, AsksUsage: true, kind: viaStreamgate, template: passthroughConfig},
		{ID: "d", Name: "Envoy + Streamgate, all features", Note: configLabel(full),
			Config: fullName, Binary: o.FullBin, AsksUsage: true, kind: viaStreamgate, template: full},
		{ID: "e", Name: "Envoy + Streamgate translating OpenAI ⇄ Anthropic", Note: configLabel(translateConfig),
			Config: translateName, Binary: o.StreamgateBin, AsksUsage: true, kind: viaStreamgate, template: translateConfig},
		{ID: "f", Name: "Envoy + Streamgate, all features, clients not asking for usage", Note: configLabel(full),
			Config: fullName, Binary: o.FullBin, kind: viaStreamgate, template: full},
		{ID: "g", Name: "Envoy + Streamgate, everything on", Note: configLabel(everythingConfig),
			Config: everythingName, Binary: o.StreamgateBin, kind: viaStreamgate, template: everythingConfig},
	}
	for _, t := range ts {
		if !slices.Contains(o.Configs, t.ID) {
			t.Skipped = "not selected (-configs)"
		}
	}
	return ts
}

// start launches t's processes (none for the backend itself).
func (t *target) start(ctx context.Context, o Options, dir string, b *backend) error {
	switch t.kind {
	case plainEnvoy:
		return startPlainEnvoy(ctx, t, t.template, o.EnvoyBin, dir, b, o.APIKey)
	case viaStreamgate:
		return startStreamgate(ctx, t, t.template, t.Binary, o.EnvoyBin, dir, b, o.APIKey)
	}
	return nil
}

// usageNote says whether t's clients ask for usage, for the reports.
func (t *target) usageNote() string {
	if t.AsksUsage {
		return "clients ask for usage (stream_options.include_usage)"
	}
	return "clients do not ask for usage (the official SDKs' default)"
}

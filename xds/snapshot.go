// Package xds is Streamgate's control plane: it turns a config into Envoy
// resources and serves them over ADS (go-control-plane snapshot cache).
package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/streamgate/streamgate/config"
)

// Mode says which resources a snapshot holds.
type Mode int

const (
	// AllInOne publishes the gateway listener, its routes, the ext_proc
	// cluster and the model clusters: Envoy needs nothing else.
	AllInOne Mode = iota
	// DropIn publishes only the model clusters and their endpoints, for an
	// Envoy whose listeners are configured elsewhere.
	DropIn
)

// Snapshot builds the resources for cfg. It is a pure function of its
// inputs: the same config always yields the same resources, in sorted order,
// and per-type versions derived from their content.
func Snapshot(cfg *config.Config, mode Mode) (*cachev3.Snapshot, error) {
	res := map[resourcev3.Type][]types.Resource{}
	backends := sortedBackends(cfg)
	cross := crossBackends(cfg)
	for i := range backends {
		b := &backends[i]
		c, err := backendCluster(b)
		if err != nil {
			return nil, err
		}
		if cross[b.Name] {
			markEndpoints(c.LoadAssignment, b.Name)
		}
		if err := applyPicking(c, b, cfg.Gateway.RetryBudgetPercent); err != nil {
			return nil, err
		}
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
		if usesEDS(b) {
			cla := backendEndpoints(b)
			if cross[b.Name] {
				markEndpoints(cla, b.Name)
			}
			res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], cla)
		}
	}
	for _, chain := range failoverChains(cfg) {
		c, err := failoverCluster(cfg, chain)
		if err != nil {
			return nil, err
		}
		if cfg.MixesProtocols(chain[0], chain[1:]) {
			if err := crossChainOptions(cfg, c); err != nil {
				return nil, err
			}
		}
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
	}
	if mode == AllInOne {
		ep, err := extProcCluster(cfg.ExtProc.EnvoyAddress())
		if err != nil {
			return nil, err
		}
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], ep, unroutedCluster())
		l, err := gatewayListener(cfg)
		if err != nil {
			return nil, err
		}
		res[resourcev3.ListenerType] = []types.Resource{l}
		rc, err := routeConfig(cfg)
		if err != nil {
			return nil, err
		}
		res[resourcev3.RouteType] = []types.Resource{rc}
		if secrets := listenerSecrets(cfg); len(secrets) > 0 {
			res[resourcev3.SecretType] = secrets
		}
	}
	snap, err := cachev3.NewSnapshot("", res)
	if err != nil {
		return nil, fmt.Errorf("cannot build snapshot: %w", err)
	}
	// Each type gets a version of its own content: a reload that changes
	// only clusters leaves the listener's version alone, so Envoy never
	// drains the listener (and its open streams) for it.
	for typ, items := range res {
		v, err := contentVersion(typ, items)
		if err != nil {
			return nil, err
		}
		snap.Resources[cachev3.GetResponseType(typ)].Version = v
	}
	if err := snap.Consistent(); err != nil {
		return nil, fmt.Errorf("cannot build a consistent snapshot: %w", err)
	}
	return snap, nil
}

// sortedBackends returns a copy of cfg's backends sorted by name.
func sortedBackends(cfg *config.Config) []config.Backend {
	out := append([]config.Backend(nil), cfg.Backends...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// contentVersion hashes the deterministic encoding of one type's resources,
// so a version changes exactly when that content does.
func contentVersion(typ string, items []types.Resource) (string, error) {
	h := sha256.New()
	h.Write([]byte(typ))
	opts := proto.MarshalOptions{Deterministic: true}
	for _, r := range items {
		b, err := opts.Marshal(r)
		if err != nil {
			return "", fmt.Errorf("cannot encode %s: %w", typ, err)
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// toAny packs m deterministically: the same message always gives the same
// bytes, so snapshot versions change only when content does.
func toAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, err
	}
	return a, nil
}

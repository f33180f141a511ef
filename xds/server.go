package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/streamgate/streamgate/config"
)

// Server publishes snapshots to every Envoy that connects, whatever its node
// id: all Envoys of one Streamgate deployment get the same configuration.
// Its methods are safe for concurrent use.
type Server struct {
	mode  Mode
	cache cachev3.SnapshotCache
	log   *slog.Logger
}

// allNodes hashes every node to one key so one snapshot serves them all.
type allNodes struct{}

func (allNodes) ID(*corev3.Node) string { return "streamgate" }

// NewServer returns a Server with no snapshot yet; call Update before Envoy connects.
func NewServer(mode Mode, log *slog.Logger) *Server {
	return &Server{mode: mode, cache: cachev3.NewSnapshotCache(true, allNodes{}, nil), log: log}
}

// Update builds and publishes the snapshot for cfg and returns its version.
func (s *Server) Update(ctx context.Context, cfg *config.Config) (string, error) {
	snap, err := Snapshot(cfg, s.mode)
	if err != nil {
		return "", err
	}
	return s.Publish(ctx, snap, len(cfg.Backends)), nil
}

// Publish serves snap to every Envoy and returns its version.
func (s *Server) Publish(ctx context.Context, snap *cachev3.Snapshot, backends int) string {
	v := snapshotVersion(snap)
	if err := s.cache.SetSnapshot(ctx, "streamgate", snap); err != nil {
		// The cache keeps the snapshot; only answering an open watch failed.
		s.log.Error("cannot answer an xDS watch with the new snapshot", "version", v, "error", err.Error())
	}
	s.log.Info("xds snapshot published", "version", v, "backends", backends)
	return v
}

// snapshotVersion names a snapshot by its per-type versions.
func snapshotVersion(s *cachev3.Snapshot) string {
	return fmt.Sprintf("cds=%s eds=%s lds=%s rds=%s",
		s.GetVersion(resourcev3.ClusterType), s.GetVersion(resourcev3.EndpointType),
		s.GetVersion(resourcev3.ListenerType), s.GetVersion(resourcev3.RouteType))
}

// Serve answers ADS (and the per-type xDS services) plus gRPC health on lis
// until ctx is done.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	gs := grpc.NewServer()
	xs := serverv3.NewServer(ctx, s.cache, nil)
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	clusterservice.RegisterClusterDiscoveryServiceServer(gs, xs)
	endpointservice.RegisterEndpointDiscoveryServiceServer(gs, xs)
	listenerservice.RegisterListenerDiscoveryServiceServer(gs, xs)
	routeservice.RegisterRouteDiscoveryServiceServer(gs, xs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	go func() {
		<-ctx.Done()
		hs.Shutdown()
		gs.Stop()
	}()
	if err := gs.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("cannot serve xDS: %w", err)
	}
	return nil
}

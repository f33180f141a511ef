package extproctest

import (
	"context"
	"net"
	"testing"

	extprocsvcv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Server is what Serve runs: the ext_proc server's Serve method.
type Server interface {
	Serve(ctx context.Context, lis net.Listener) error
}

// Serve runs srv on a free loopback port until the test ends and returns
// a client connected to it. The test's cleanup stops the server and waits
// for Serve to return.
func Serve(t testing.TB, srv Server) extprocsvcv3.ExternalProcessorClient {
	t.Helper()
	conn, err := grpc.NewClient(Listen(t, srv), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("cannot dial the ext_proc server: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return extprocsvcv3.NewExternalProcessorClient(conn)
}

// Listen runs srv on a free loopback port until the test ends and returns
// its address.
func Listen(t testing.TB, srv Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-served })
	return lis.Addr().String()
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/streamgate/streamgate/batch"
	"github.com/streamgate/streamgate/bridge"
	"github.com/streamgate/streamgate/config"
)

// newBatch opens cfg's batch store, reads its credentials and listens on
// batch.listen. The returned serve runs the service and resumes the
// batches a previous run left unfinished, until ctx ends; lines in flight
// then are abandoned unrecorded and run again on the next start.
func newBatch(cfg *config.Config, log *slog.Logger) (serve func(ctx context.Context) error, err error) {
	bc := cfg.Batch
	store, err := batch.OpenStore(bc.Dir)
	if err != nil {
		return nil, err
	}
	keys := map[string]string{}
	for _, c := range bc.Credentials {
		k, err := config.BridgeCredentialKey(c)
		if err != nil {
			return nil, fmt.Errorf("batch: %w", err)
		}
		keys[c.Name] = k
	}
	tenantHeader, open := "", cfg.Auth == nil
	if !open {
		tenantHeader = cfg.Auth.TenantHeader
	}
	r := &batch.Runner{Store: store, GatewayURL: bc.GatewayURL, Priority: bc.Priority, MaxAttempts: bc.MaxAttempts,
		Backoff: bc.Backoff, Timeout: bc.RequestTimeout, Window: bridge.NewWindow(bc.MaxInFlight), Log: log, Now: time.Now,
		Client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: bc.MaxInFlight, IdleConnTimeout: time.Minute}},
		Key: func(tenant string) (string, bool) {
			if open {
				return "", true // an open gateway: lines go without a key
			}
			k, ok := keys[tenant]
			return k, ok
		}}
	lis, err := net.Listen("tcp", bc.Listen)
	if err != nil {
		return nil, fmt.Errorf("batch: cannot listen: %w", err)
	}
	return func(ctx context.Context) error {
		svc := &batch.Service{Runner: r, TenantHeader: tenantHeader, Ctx: ctx}
		srv := &http.Server{Handler: svc.Handler(), ReadHeaderTimeout: 10 * time.Second}
		r.Resume(ctx)
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("batch service started", "listen", bc.Listen, "dir", bc.Dir)
		err := srv.Serve(lis)
		r.Wait()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}, nil
}

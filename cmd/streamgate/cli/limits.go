package cli

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamgate/streamgate/config"
	"github.com/streamgate/streamgate/extproc"
)

// newLimits builds the limiter the config asks for.
func newLimits(cfg *config.Config, reg prometheus.Registerer, _ *slog.Logger) (*extproc.Limits, error) {
	if cfg.Limits.Store == config.LimitStoreRedis {
		return nil, errors.New("cannot build limits: the redis store is not implemented yet; use store: memory")
	}
	return extproc.NewLimits(cfg, nil, reg)
}

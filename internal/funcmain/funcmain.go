// Package funcmain is the function's process entry: func-go in HTTP mode,
// as the func scaffolding's main runs it, plus one log line with the URL
// the process listens on ({"msg":"listening","url":…}, at any LOG_LEVEL), so that
// LISTEN_ADDRESS=127.0.0.1:0 lets the operating system pick the port. The
// tests, benchmarks and quick start run the function that way
// (internal/proc reads the line); cmd/rollback-incident and the quick
// start's function process both call Run.
package funcmain

import (
	"context"
	"log/slog"
	"os"

	fhttp "knative.dev/func-go/http"

	function "function"
)

// Run serves the function until SIGINT or SIGTERM, or until it fails.
func Run() error {
	f := announcing{Function: function.New(), started: make(chan struct{})}
	svc := fhttp.New(f)
	done := make(chan error, 1)
	go func() { done <- svc.Start(context.Background()) }()
	select {
	case <-f.started:
		// func-go calls Start only after its listener is bound, so the
		// address is there to read, and the channel orders the read. The
		// line is written whatever LOG_LEVEL: whoever started the process
		// may need it to find the port.
		slog.New(slog.NewJSONHandler(os.Stderr, nil)).Info("listening", "url", "http://"+svc.Addr().String())
	case err := <-done:
		return err
	}
	return <-done
}

// announcing is the function with a signal that func-go has called Start.
type announcing struct {
	*function.Function
	started chan struct{}
}

func (a announcing) Start(ctx context.Context, cfg map[string]string) error {
	close(a.started)
	return a.Function.Start(ctx, cfg)
}

package natskv_test

import (
	"sync/atomic"
	"testing"
	"time"

	"function/internal/tcpproxy"
)

// staller pauses proxies for stall out of every period, starting at once,
// until the test ends: a node whose links these are falls behind the
// others and catches up, over and over.
type staller struct {
	stalls atomic.Int32 // stalls begun
}

func stallEvery(t *testing.T, period, stall time.Duration, ps ...*tcpproxy.Proxy) *staller {
	st := &staller{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			for _, p := range ps {
				p.Pause()
			}
			st.stalls.Add(1)
			select {
			case <-stop:
			case <-time.After(stall):
			}
			for _, p := range ps {
				p.Resume()
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return st
}

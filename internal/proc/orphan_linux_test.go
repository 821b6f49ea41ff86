package proc

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// A parent killed outright takes the children it started with it: the
// server its child started stops answering once the parent is SIGKILLed,
// with no cleanup of its own having run.
func TestChildDiesWithParent(t *testing.T) {
	parent := start(t, "parent") // announces its child's URL
	child := parent.URL + "/health/readiness"
	resp, err := http.Get(child)
	if err != nil {
		t.Fatalf("the child does not answer: %v", err)
	}
	resp.Body.Close()
	parent.Kill()
	// A bound on the wait, not on how fast: the kernel signals at once.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, child, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("the child still answers after its parent was killed")
			}
			return // refused: gone
		}
		resp.Body.Close()
		select {
		case <-ctx.Done():
			t.Fatal("the child still answers after its parent was killed")
		case <-tick.C:
		}
	}
}

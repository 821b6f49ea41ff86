package handler

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sync/semaphore"

	"function/config"
)

func budgetHandler(inflight int64) *Handler {
	cfg := config.Config{MaxBodyBytes: 1 << 20, MaxInflightBytes: inflight}
	return &Handler{cfg: cfg, small: semaphore.NewWeighted(inflight), large: semaphore.NewWeighted(inflight)}
}

func post(length int64) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(""))
	r.ContentLength = length
	return r
}

// Large or slow bodies exhaust their own budget only: a small event still
// gets in at once, a large one waits bodyWait and is refused, and room
// given back is taken by the next caller.
func TestBodyBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := budgetHandler(4 << 20)
		ctx := context.Background()
		var held []func()
		for range 4 { // four 1 MiB bodies, or four of unknown length, being read slowly
			release, ok := h.reserve(ctx, post(-1))
			if !ok {
				t.Fatal("the large budget refused a body it had room for")
			}
			held = append(held, release)
		}
		start := time.Now()
		if _, ok := h.reserve(ctx, post(1<<20)); ok {
			t.Fatal("a fifth 1 MiB body got in past the budget")
		}
		if waited := time.Since(start); waited != bodyWait {
			t.Errorf("refused after %v, want after bodyWait %v", waited, bodyWait)
		}
		for i := range 1000 { // honest events are not held up by the large ones
			if release, ok := h.reserve(ctx, post(3_000)); !ok {
				t.Fatalf("small body %d refused while large ones fill their budget", i)
			} else if i%2 == 0 {
				release()
			}
		}
		held[0]()
		held[0]() // releasing twice gives back once
		if _, ok := h.reserve(ctx, post(1<<20)); !ok {
			t.Error("room given back was not taken")
		}
		if _, ok := h.reserve(ctx, post(1)); !ok {
			t.Error("small budget exhausted by 500 held 3 kB bodies (1.5 MB of 4 MiB)")
		}
		if _, ok := h.reserve(ctx, post(1<<20)); ok {
			t.Error("a double release gave back twice")
		}
	})
}

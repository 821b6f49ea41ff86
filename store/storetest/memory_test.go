package storetest_test

import (
	"testing"
	"time"

	"function/store"
	"function/store/memory"
	"function/store/storetest"
)

// TestMemory runs the suite against the in-process store. Every "replica"
// is the same *memory.Store: within one process that is the only sharing
// there is. Its locks ignore the ttl, because they die with the process
// that holds them, hence SkipLapse.
func TestMemory(t *testing.T) {
	var s *memory.Store
	storetest.Run(t, func(t *testing.T) store.Store {
		if s == nil {
			s = memory.New(24 * time.Hour)
		}
		return s
	}, storetest.SkipLapse())
}

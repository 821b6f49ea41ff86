// Package bench holds the function's benchmarks and the quick tests that
// pin the figures docs/benchmarks.md publishes (Atlassian calls per
// incident).
//
//	go test -run '^$' -bench . -benchmem ./bench/...
//
// The whole-process figures (cold start, footprint, storms) come from the
// load driver: go run ./cmd/loadgen -scenario all. See docs/benchmarks.md.
package bench

// Package bench holds the function's benchmarks and the quick tests that
// pin the figures docs/benchmarks.md publishes (Atlassian calls per
// incident).
//
//	go test -run '^$' -bench 'Duplicate|NewIncident' -benchmem ./bench/...
//
// BenchmarkDrainAfterOutage and BenchmarkMemoryUnderLargeBodies are run
// once each, by name, with -benchtime 1x.
//
// The whole-process figures (cold start, footprint, storms) come from the
// load driver: go run ./cmd/loadgen -scenario all. See docs/benchmarks.md.
package bench

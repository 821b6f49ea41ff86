package bench

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"function/bench/harness"
	"function/internal/proc"
)

// memoryLimit is the container memory limit the manifests set; the
// function's GOMEMLIMIT is set below it, as deploy/function/service.yaml
// does.
const (
	memoryLimit = 256 << 20
	goMemLimit  = "200MiB"
)

// megabyteEvent is a well-formed event of about 1 MB: a healthy Rollout
// notification padded with a list of short strings (each under the
// decoder's string limit), so reading, parsing and decoding all happen.
func megabyteEvent() []byte {
	var b strings.Builder
	b.WriteString(`{"rolloutName":"big","namespace":"payments","phase":"Healthy","padding":[`)
	for i := 0; b.Len() < 1_000_000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + strings.Repeat("x", 90) + `"`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkMemoryUnderLargeBodies: the function process, as deployed
// (GOMEMLIMIT below the container limit), receives 500 concurrent 1 MB
// bodies from authenticated callers, then 500 from unauthenticated callers
// with HMAC-only authentication (the body must be read to check it), then
// 300 slow bodies that announce 1 MB and trickle; meanwhile an honest
// rollback is sent. Reported: the peak RSS against the 256 MiB limit, and
// whether the honest rollback got its incident while the slow bodies were
// held. Run once:
//
//	go test -run '^$' -bench MemoryUnderLargeBodies -benchtime 1x ./bench/
func BenchmarkMemoryUnderLargeBodies(b *testing.B) {
	dir := b.TempDir()
	bin, err := proc.Build(context.Background(), "", dir, "./cmd/rollback-incident")
	if err != nil {
		b.Fatal(err)
	}
	big := megabyteEvent()
	for range b.N {
		emu := harness.NewEmulator()
		const hmacSecret = "bench-hmac-secret-1234"
		p, err := harness.Launch(bin, harness.FunctionEnv(emu.URL, map[string]string{
			"GOMEMLIMIT": goMemLimit, "HMAC_SECRET": hmacSecret, "AUTH_TOKEN": "",
		}))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := harness.WaitOK(p, "/health/readiness", 10*time.Millisecond, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		sign := func(body []byte) string {
			m := hmac.New(sha256.New, []byte(hmacSecret))
			m.Write(body)
			return "sha256=" + hex.EncodeToString(m.Sum(nil))
		}
		burst := func(signed bool) map[int]int {
			statuses := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range 500 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest(http.MethodPost, p.URL+"/", bytes.NewReader(big))
					req.Header.Set("Content-Type", "application/json")
					if signed {
						req.Header.Set("X-Signature-256", sign(big))
					} else {
						req.Header.Set("X-Signature-256", "sha256=00")
					}
					status := 0
					if resp, err := http.DefaultClient.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					}
					mu.Lock()
					statuses[status]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			return statuses
		}
		authed := burst(true)
		_, peakAuthed, _ := harness.Memory(p.Pid())
		unauthed := burst(false)
		_, peakUnauthed, _ := harness.Memory(p.Pid())

		// 300 slow bodies: each announces 1 MB and sends a byte a second.
		var conns []net.Conn
		for range 300 {
			c, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Signature-256: sha256=00\r\nContent-Length: %d\r\n\r\n{", len(big))
			conns = append(conns, c)
		}
		d, err := harness.Notification()
		if err != nil {
			b.Fatal(err)
		}
		honest := d.Body
		req, _ := http.NewRequest(http.MethodPost, p.URL+"/", bytes.NewReader(honest))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Signature-256", sign(honest))
		start := time.Now()
		honestStatus := 0
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			honestStatus = resp.StatusCode
		}
		honestTook := time.Since(start)
		_, peakSlow, _ := harness.Memory(p.Pid())
		for _, c := range conns {
			c.Close()
		}
		p.Stop(10 * time.Second)
		emu.Close()
		if honestStatus != http.StatusOK || len(emu.Issues()) != 1 {
			b.Errorf("honest rollback during the slow bodies: %d, %d issues", honestStatus, len(emu.Issues()))
		}
		b.Logf("authenticated 1 MB ×500: %v; peak RSS %d MiB", authed, peakAuthed>>20)
		b.Logf("unauthenticated 1 MB ×500 (HMAC-only): %v; peak RSS %d MiB", unauthed, peakUnauthed>>20)
		b.Logf("300 slow bodies held; an honest rollback answered %d in %v; peak RSS %d MiB", honestStatus, honestTook.Round(time.Millisecond), peakSlow>>20)
		peak := max(peakAuthed, peakUnauthed, peakSlow)
		b.ReportMetric(float64(peakAuthed>>20), "MiB-peak-authed")
		b.ReportMetric(float64(peakUnauthed>>20), "MiB-peak-unauthed")
		b.ReportMetric(float64(peakSlow>>20), "MiB-peak-slow")
		b.ReportMetric(honestTook.Seconds()*1000, "ms-honest-during-slow")
		if peak > memoryLimit {
			b.Errorf("peak RSS %d MiB over the %d MiB limit", peak>>20, memoryLimit>>20)
		}
	}
}

package inbound

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// FuzzDecode feeds arbitrary bytes to the decoder, seeded with every real
// fixture and captured request: it must never panic, reject only with an
// input error of bounded length, and hand out only clean incidents.
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "*.json"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err == nil {
			f.Add(b)
		}
	}
	for _, file := range []string{"captured/e2e-capture.jsonl", "captured/e2e-resource-capture.jsonl"} {
		fh, err := os.Open(filepath.Join(fixtures, file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var c struct{ Body string }
			if json.Unmarshal(sc.Bytes(), &c) == nil {
				f.Add([]byte(c.Body))
			}
		}
		fh.Close()
	}
	f.Add([]byte(`{"rolloutName":"a","namespace":"b","phase":"Degraded","message":"\u0000</td><script>"}`))
	d := NewDecoder("fuzz", Limits{MaxDepth: 32, MaxStringLength: 4096})
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, err := d.Decode(data, Meta{})
		if err != nil {
			if !IsInputError(err) {
				t.Fatalf("non-input error %v", err)
			}
			if len(err.Error()) > 1000 {
				t.Fatalf("error too long: %d bytes", len(err.Error()))
			}
			return
		}
		if (dec.Incident == nil) == (dec.Ignored == "") {
			t.Fatalf("decision %+v: exactly one of incident and ignored", dec)
		}
		in := dec.Incident
		if in == nil {
			return
		}
		if len(in.Fingerprint()) != 16 || !dns1123Subdomain.MatchString(in.Name) || !dns1123Label.MatchString(in.Namespace) {
			t.Fatalf("bad identity %q/%q", in.Namespace, in.Name)
		}
		if j := dec.joins; j != nil && (!dns1123Subdomain.MatchString(j.Name) || !dns1123Label.MatchString(j.Namespace)) {
			t.Fatalf("bad joined identity %q/%q", j.Namespace, j.Name)
		}
		for _, s := range []string{in.Message, in.Reason, in.Phase, in.Revision, in.FailedNode} {
			if strings.ContainsFunc(s, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) {
				t.Fatalf("control character left in %q", s)
			}
		}
		for _, l := range in.Links {
			if !safeURL(l.URL) {
				t.Fatalf("unsafe link %q", l.URL)
			}
		}
	})
}

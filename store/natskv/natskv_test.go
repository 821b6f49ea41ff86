package natskv_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"function/store"
	"function/store/natskv"
	"function/store/storetest"
)

// quiet drops the store's logs: connection events arrive on nats.go's
// goroutines, possibly after a test has finished.
var quiet = slog.New(slog.DiscardHandler)

// startServer runs an embedded JetStream server on a random loopback port.
func startServer(t *testing.T, adjust func(*server.Options)) *server.Server {
	t.Helper()
	o := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	if adjust != nil {
		adjust(o)
	}
	return run(t, o)
}

func run(t *testing.T, o *server.Options) *server.Server {
	t.Helper()
	ns, err := server.NewServer(o)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

func open(t *testing.T, o natskv.Options) *natskv.Store {
	t.Helper()
	s, err := tryOpen(t, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// With the server up, Open has waited for the bucket; a cluster still
	// electing its leaders may take longer.
	waitFor(t, ctxTimeout(t, 30*time.Second), "the store to become ready", s.Ready)
	return s
}

func tryOpen(t *testing.T, o natskv.Options) (*natskv.Store, error) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	if o.Name == "" {
		o.Name = t.Name()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	s, err := natskv.Open(ctx, o)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// rawConn is a plain client connection.
func rawConn(t *testing.T, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// rawKV opens the bucket with a plain client, to look at what the store
// wrote.
func rawKV(t *testing.T, url, bucket string) jetstream.KeyValue {
	t.Helper()
	js, err := jetstream.New(rawConn(t, url))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctxTimeout(t, 5*time.Second), bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Each open is a new connection to the same bucket: a different replica.
func TestConformanceSingleServer(t *testing.T) {
	ns := startServer(t, nil)
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, natskv.Options{URL: ns.ClientURL(), Bucket: "conformance"})
	})
}

func TestBucketConfigAndFormats(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL(), TTL: 48 * time.Hour})
	kv := rawKV(t, ns.ClientURL(), natskv.DefaultBucket)
	ctx := ctxTimeout(t, 10*time.Second)

	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.History() != 1 || st.TTL() != 48*time.Hour {
		t.Errorf("bucket history %d ttl %v, want 1 and 48h", st.History(), st.TTL())
	}
	if cfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config; cfg.Storage != jetstream.FileStorage || cfg.Replicas != 1 {
		t.Errorf("bucket storage %v replicas %d, want file and 1", cfg.Storage, cfg.Replicas)
	}
	// A second replica with other settings updates the bucket.
	open(t, natskv.Options{URL: ns.ClientURL(), TTL: 72 * time.Hour})
	if st, err = kv.Status(ctx); err != nil || st.TTL() != 72*time.Hour {
		t.Errorf("bucket ttl after reopen = %v (err %v), want 72h", st.TTL(), err)
	}

	fp := storetest.Fingerprint(t)
	before := time.Now()
	unlock, err := s.Lock(ctx, fp, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "lock."+fp)
	if err != nil {
		t.Fatalf("lock key: %v", err)
	}
	var lv struct {
		Owner   string `json:"owner"`
		Expires int64  `json:"expires"`
	}
	if err := json.Unmarshal(e.Value(), &lv); err != nil || lv.Owner == "" {
		t.Fatalf("lock value %s: %v", e.Value(), err)
	}
	if exp := time.Unix(0, lv.Expires); exp.Before(before.Add(30*time.Second)) || exp.After(time.Now().Add(30*time.Second)) {
		t.Errorf("lock expires %v, want about now+30s", exp)
	}
	unlock()
	if _, err := kv.Get(ctx, "lock."+fp); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("lock key after unlock: %v, want ErrKeyNotFound", err)
	}

	if _, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-7"}); err != nil {
		t.Fatal(err)
	}
	e, err = kv.Get(ctx, "rec."+fp)
	if err != nil {
		t.Fatalf("record key: %v", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Value(), &raw); err != nil || raw["fingerprint"] != fp || raw["jiraKey"] != "OPS-7" || raw["createdAt"] == nil {
		t.Errorf("record value %s (err %v)", e.Value(), err)
	}

	// A record started afresh (zero CreatedAt) is a new incident: Put gives
	// it a new CreatedAt rather than the old one. The old one is set well in
	// the past, so that "new" does not depend on the clock ticking between
	// two Puts.
	past := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	old, _, _ := s.Get(ctx, fp)
	old.CreatedAt = past
	if _, err := s.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	old, _, _ = s.Get(ctx, fp)
	if !old.CreatedAt.Equal(past) {
		t.Fatalf("CreatedAt %v, want the one given %v", old.CreatedAt, past)
	}
	if _, err := s.Put(ctx, store.Record{Fingerprint: fp, Revision: old.Revision}); err != nil {
		t.Fatal(err)
	}
	if fresh, _, _ := s.Get(ctx, fp); !fresh.CreatedAt.After(past) || fresh.JiraKey != "" {
		t.Errorf("fresh record %+v, old CreatedAt %v", fresh, past)
	}
}

// A key deleted in the bucket (by an operator, or a lock released) holds a
// delete marker: for the store it is no record, and a create (revision 0)
// writes over it.
func TestCreateOverDeleteMarker(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL()})
	kv := rawKV(t, ns.ClientURL(), natskv.DefaultBucket)
	ctx := ctxTimeout(t, 10*time.Second)

	for _, purge := range []bool{false, true} {
		fp := storetest.Fingerprint(t)
		if _, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-OLD"}); err != nil {
			t.Fatal(err)
		}
		var err error
		if purge {
			err = kv.Purge(ctx, "rec."+fp)
		} else {
			err = kv.Delete(ctx, "rec."+fp)
		}
		if err != nil {
			t.Fatal(err)
		}
		if r, ok, err := s.Get(ctx, fp); err != nil || ok {
			t.Fatalf("purge %v: Get of a deleted record: %+v ok=%v err=%v, want none", purge, r, ok, err)
		}
		saved, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-NEW"})
		if err != nil {
			t.Fatalf("purge %v: create over the marker: %v", purge, err)
		}
		if got, ok, err := s.Get(ctx, fp); err != nil || !ok || got.JiraKey != "OPS-NEW" || got.Revision != saved.Revision {
			t.Fatalf("purge %v: after the create: %+v ok=%v err=%v", purge, got, ok, err)
		}
		// And a second create loses, now that the key has a value.
		if _, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-LATE"}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("purge %v: a second create: %v, want ErrConflict", purge, err)
		}
	}
}

// The pending index entry is there while the record is pending, and gone,
// without a marker for Pending to step over, once it is finished.
func TestPendingIndexKey(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL()})
	kv := rawKV(t, ns.ClientURL(), natskv.DefaultBucket)
	ctx := ctxTimeout(t, 10*time.Second)
	fp := storetest.Fingerprint(t)

	since := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	saved, err := s.Put(ctx, store.Record{Fingerprint: fp, Pending: &store.Pending{Since: since}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "pend."+fp)
	if err != nil {
		t.Fatalf("index entry of a pending record: %v", err)
	}
	if string(e.Value()) != "2025-03-01T10:00:00Z" || e.Revision() >= saved.Revision {
		t.Errorf("index entry %q at revision %d, want the custody time, written before the record (revision %d)", e.Value(), e.Revision(), saved.Revision)
	}

	saved.Pending = nil
	if _, err := s.Put(ctx, saved); err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stream := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Name
	js, err := jetstream.New(rawConn(t, ns.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	str, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter("$KV."+natskv.DefaultBucket+".pend.>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects["$KV."+natskv.DefaultBucket+".pend."+fp]; n != 0 {
		t.Errorf("the finished record's index subject still holds %d message(s)", n)
	}
}

// An operator (or an EventBus that lost its volume) deletes the bucket:
// the store says it is unavailable, creates the bucket again, and serves.
func TestBucketRecreated(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL(), Bucket: "recreated"})
	ctx := ctxTimeout(t, 30*time.Second)
	fp := storetest.Fingerprint(t)
	if _, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(rawConn(t, ns.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteKeyValue(ctx, "recreated"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Get(ctx, fp); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Get from a deleted bucket: %v, want ErrUnavailable", err)
	}
	waitFor(t, ctx, "the bucket to be created again", func() bool {
		_, err := js.KeyValue(ctx, "recreated")
		return err == nil && s.Ready()
	})
	if _, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-2"}); err != nil {
		t.Fatalf("Put into the recreated bucket: %v", err)
	}
	if got, ok, err := s.Get(ctx, fp); err != nil || !ok || got.JiraKey != "OPS-2" {
		t.Fatalf("Get from the recreated bucket: %+v ok=%v err=%v", got, ok, err)
	}
}

// A lock value nobody can parse would otherwise block its fingerprint until
// the bucket TTL; it is taken over.
func TestUnreadableLockTakenOver(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL()})
	fp := storetest.Fingerprint(t)
	if _, err := rawKV(t, ns.ClientURL(), natskv.DefaultBucket).Put(ctxTimeout(t, 5*time.Second), "lock."+fp, []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(ctxTimeout(t, 2*time.Second), fp, 30*time.Second)
	if err != nil {
		t.Fatalf("Lock over unreadable value: %v", err)
	}
	unlock()
}

// testTakeoverRace: many waiters on several replicas see the same lapsed
// lock at once; the CAS takeover lets exactly one in at a time.
func testTakeoverRace(t *testing.T, stores []*natskv.Store) {
	fp := storetest.Fingerprint(t)
	ctx := ctxTimeout(t, 30*time.Second)
	if _, err := stores[0].Lock(ctx, fp, time.Second); err != nil { // never unlocked
		t.Fatal(err)
	}
	const n = 12
	var inside atomic.Bool
	var overlaps, done atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		s := stores[i%len(stores)]
		wg.Go(func() {
			unlock, err := s.Lock(ctx, fp, 30*time.Second)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			if !inside.CompareAndSwap(false, true) {
				overlaps.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
			inside.Store(false)
			done.Add(1)
			unlock()
		})
	}
	wg.Wait()
	if overlaps.Load() != 0 || done.Load() != n {
		t.Errorf("overlaps %d, done %d of %d", overlaps.Load(), done.Load(), n)
	}
}

func TestUserPassword(t *testing.T) {
	const user, pass = "argo-js", "pw-Secret-1234567"
	ns := startServer(t, func(o *server.Options) { o.Username, o.Password = user, pass })
	url := ns.ClientURL()

	s := open(t, natskv.Options{URL: url, User: user, Password: pass})
	if _, _, err := s.Get(ctxTimeout(t, 5*time.Second), storetest.Fingerprint(t)); err != nil {
		t.Fatalf("Get with good credentials: %v", err)
	}

	const wrong = "pw-Wrong-7654321"
	_, err := tryOpen(t, natskv.Options{URL: url, User: user, Password: wrong})
	if err == nil {
		t.Fatal("Open with a wrong password succeeded")
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), pass) {
		t.Errorf("error reveals a password: %v", err)
	}
	t.Logf("wrong password: %v", err)

	// A password in the URL must not leak either.
	withPW := strings.Replace(url, "nats://", "nats://"+user+":"+wrong+"@", 1)
	if _, err := tryOpen(t, natskv.Options{URL: withPW}); err == nil || strings.Contains(err.Error(), wrong) {
		t.Errorf("Open with a wrong password in the URL: %v", err)
	}

	dir := t.TempDir()
	good := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(good, []byte("username: "+user+"\npassword: "+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open(t, natskv.Options{URL: url, AuthFile: good})

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("username: "+user+"\npassword: "+wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tryOpen(t, natskv.Options{URL: url, AuthFile: bad}); err == nil || strings.Contains(err.Error(), wrong) {
		t.Errorf("Open with a wrong password in the auth file: %v", err)
	}
	if _, err := tryOpen(t, natskv.Options{URL: url, AuthFile: good, User: user, Password: pass}); err == nil {
		t.Error("Open with both AuthFile and User/Password succeeded")
	}
	if _, err := tryOpen(t, natskv.Options{URL: url, AuthFile: filepath.Join(dir, "missing")}); err == nil {
		t.Error("Open with a missing auth file succeeded")
	}
}

func TestParseAuthFile(t *testing.T) {
	tests := []struct {
		name, in   string
		user, pass string
		wantErr    bool
	}{
		{name: "argo", in: "username: Ab3dEf9h\npassword: q1W2e3R4t5Y6u7I8", user: "Ab3dEf9h", pass: "q1W2e3R4t5Y6u7I8"},
		{name: "trailing newline", in: "username: u\npassword: p\n", user: "u", pass: "p"},
		{name: "crlf", in: "username: u\r\npassword: p\r\n", user: "u", pass: "p"},
		{name: "whitespace", in: "  \nusername:    u  \npassword:\tp \t\n\n", user: "u", pass: "p"},
		{name: "folded value", in: "username:\n  u\npassword: p", user: "u", pass: "p"},
		{name: "digits only", in: "username: u\npassword: 1234567890123456", user: "u", pass: "1234567890123456"},
		{name: "yaml 1.1 boolean word", in: "username: u\npassword: yes", user: "u", pass: "yes"},
		{name: "reverse order", in: "password: p\nusername: u", user: "u", pass: "p"},
		{name: "double quotes", in: `username: "u s"` + "\n" + `password: "p:#\"\\x"`, user: "u s", pass: `p:#"\x`},
		{name: "single quotes", in: "username: 'u'\npassword: 'it''s # not a comment'", user: "u", pass: "it's # not a comment"},
		{name: "comments and doc marker", in: "---\n# client auth\nusername: u # the user\npassword: p#notcomment\n", user: "u", pass: "p#notcomment"},
		{name: "colon in value", in: "username: u\npassword: a:b:c", user: "u", pass: "a:b:c"},
		{name: "bom and other keys", in: "\ufeffusername: u\nextra: x\npassword: p", user: "u", pass: "p"},
		{name: "no password", in: "username: u\n", wantErr: true},
		{name: "empty password", in: "username: u\npassword: \"\"", wantErr: true},
		{name: "no username", in: "password: p", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "not yaml", in: "username u\npassword p", wantErr: true},
		{name: "unterminated quote", in: "username: u\npassword: \"secretvalue", wantErr: true},
		{name: "junk after quote", in: "username: u\npassword: 'secret' junk", wantErr: true},
		// YAML forbids tabs for indentation; Argo's own clients (viper)
		// reject this file too.
		{name: "tab indentation", in: "username: u\n\tpassword: secret", wantErr: true},
		{name: "null password", in: "username: u\npassword: ~", wantErr: true},
		{name: "password not a string", in: "username: u\npassword: [secret, x]", wantErr: true},
		{name: "alias named like the password", in: "username: u\npassword: *secret", wantErr: true},
		{name: "duplicate key", in: "username: u\npassword: secret\npassword: secret2", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, pass, err := natskv.ParseAuthFile([]byte(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got user %q pass %q, want an error", user, pass)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error quotes the file: %v", err)
				}
				return
			}
			if err != nil || user != tt.user || pass != tt.pass {
				t.Errorf("got %q, %q, %v; want %q, %q", user, pass, err, tt.user, tt.pass)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	const dnsName = "eventbus-default-js-svc.argo-events.svc"
	caPEM, serverCert := certificates(t, dnsName)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	otherCA, _ := certificates(t, dnsName)
	otherCAFile := filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(otherCAFile, otherCA, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := startServer(t, func(o *server.Options) {
		o.TLS = true
		o.TLSTimeout = 2
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}
		o.Username, o.Password = "u", "p"
	})
	url := fmt.Sprintf("nats://127.0.0.1:%d", ns.Addr().(*net.TCPAddr).Port)

	for _, tc := range []struct {
		name string
		o    natskv.Options
		ok   bool
	}{
		{"CA and server name", natskv.Options{CAFile: caFile, TLSServerName: dnsName}, true},
		{"CA and IP SAN", natskv.Options{CAFile: caFile}, true},
		{"insecure skip verify", natskv.Options{InsecureSkipVerify: true}, true},
		{"no TLS options", natskv.Options{}, false},
		{"wrong CA", natskv.Options{CAFile: otherCAFile, TLSServerName: dnsName}, false},
		{"wrong server name", natskv.Options{CAFile: caFile, TLSServerName: "other.example"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.URL, tc.o.User, tc.o.Password = url, "u", "p"
			s, err := tryOpen(t, tc.o)
			if !tc.ok {
				if err == nil {
					t.Fatal("Open succeeded")
				}
				t.Logf("Open: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			ctx := ctxTimeout(t, 5*time.Second)
			fp := storetest.Fingerprint(t)
			if _, err := s.Put(ctx, store.Record{Fingerprint: fp}); err != nil {
				t.Fatalf("Put over TLS: %v", err)
			}
		})
	}
	if _, err := tryOpen(t, natskv.Options{URL: url, CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil {
		t.Error("Open with a missing CA file succeeded")
	}
}

// certificates makes a CA and a server certificate it signs, for 127.0.0.1
// and dnsName.
func certificates(t *testing.T, dnsName string) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"io.argoproj"}, CommonName: "test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: dnsName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		DNSNames:     []string{dnsName},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// With the server gone every call fails closed, quickly, with an error the
// handler turns into 503.
func TestServerDown(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL()})
	fp := storetest.Fingerprint(t)
	held, err := s.Lock(ctxTimeout(t, 5*time.Second), fp, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	// The client learns of the loss on its own goroutine; from then on no
	// call may reach for the network.
	waitFor(t, ctxTimeout(t, 30*time.Second), "the store to notice the server is gone", func() bool { return !s.Ready() })

	// "Quickly" is asserted as the way each call fails, not as a time: a
	// call that waited for an answer would end by its deadline, with ctx
	// done. The deadline only keeps a regression from hanging the test;
	// it is far above the store's own 5 s operation timeout, so a loaded
	// machine cannot make a correct call look slow.
	check := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx := ctxTimeout(t, time.Minute)
		err := f(ctx)
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			t.Errorf("%s: %v (ctx %v), want store.ErrUnavailable at once", what, err, ctx.Err())
		}
	}
	check("Lock", func(ctx context.Context) error {
		unlock, err := s.Lock(ctx, storetest.Fingerprint(t), 30*time.Second)
		if err == nil {
			unlock()
		}
		return err
	})
	check("Get", func(ctx context.Context) error { _, _, err := s.Get(ctx, fp); return err })
	check("Put", func(ctx context.Context) error { _, err := s.Put(ctx, store.Record{Fingerprint: fp}); return err })
	check("Pending", func(ctx context.Context) error { _, err := s.Pending(ctx); return err })
	if s.Ready() {
		t.Error("Ready with the server down")
	}

	// Unlock must give up, not hang: with no connection it does not even
	// try (the lock lapses after its ttl). Were it to wait on the network,
	// its own 5 s timeout would end it; a minute cannot be reached by a
	// correct unlock on any machine, and says what hung rather than
	// leaving it to go test's -timeout.
	released := make(chan struct{})
	go func() {
		held()
		close(released)
	}()
	select {
	case <-released:
	case <-time.After(time.Minute):
		t.Fatal("unlock with the server down did not return within a minute: it must give up after its own 5 s timeout")
	}
}

// TestOpenUnreachable is an EventBus that is down when the function
// starts: Open must not fail (the process would crash-loop through the
// blip); the store serves nothing, at once, until the server is there, and
// then everything.
func TestOpenUnreachable(t *testing.T) {
	// A server's address, then the server gone: connections are refused.
	dir := t.TempDir()
	first := startServer(t, func(o *server.Options) { o.StoreDir = dir })
	port := first.Addr().(*net.TCPAddr).Port
	first.Shutdown()
	first.WaitForShutdown()
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)

	s, err := tryOpen(t, natskv.Options{URL: url, Bucket: "late"})
	if err != nil {
		t.Fatalf("Open with the server down: %v, want a store that connects later", err)
	}
	if s.Ready() {
		t.Fatal("Ready with the server down")
	}
	fp := storetest.Fingerprint(t)
	// Each call fails with ErrUnavailable on its own, not by running into
	// the caller's deadline.
	notReady := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx := ctxTimeout(t, 10*time.Second)
		err := f(ctx)
		if !errors.Is(err, store.ErrUnavailable) || ctx.Err() != nil {
			t.Errorf("%s before the server is up: %v (ctx %v), want store.ErrUnavailable at once", what, err, ctx.Err())
		}
	}
	notReady("Get", func(ctx context.Context) error { _, _, err := s.Get(ctx, fp); return err })
	notReady("Put", func(ctx context.Context) error { _, err := s.Put(ctx, store.Record{Fingerprint: fp}); return err })
	notReady("Pending", func(ctx context.Context) error { _, err := s.Pending(ctx); return err })
	notReady("Lock", func(ctx context.Context) error {
		unlock, err := s.Lock(ctx, fp, time.Minute)
		if err == nil {
			unlock()
		}
		return err
	})

	// The EventBus comes up, on the same address.
	startServer(t, func(o *server.Options) { o.Port, o.StoreDir = port, dir })
	ctx := ctxTimeout(t, 30*time.Second)
	waitFor(t, ctx, "the store to become ready", s.Ready)
	saved, err := s.Put(ctx, store.Record{Fingerprint: fp, JiraKey: "OPS-1"})
	if err != nil {
		t.Fatalf("Put once ready: %v", err)
	}
	if got, ok, err := s.Get(ctx, fp); err != nil || !ok || got.Revision != saved.Revision || got.JiraKey != "OPS-1" {
		t.Fatalf("Get once ready: %+v ok=%v err=%v", got, ok, err)
	}
	unlock, err := s.Lock(ctx, fp, time.Minute)
	if err != nil {
		t.Fatalf("Lock once ready: %v", err)
	}
	unlock()
	// The bucket is the one Open was asked for.
	if st, err := rawKV(t, url, "late").Status(ctx); err != nil || st.History() != 1 || st.TTL() != natskv.DefaultTTL {
		t.Errorf("bucket created in the background: %+v, err %v", st, err)
	}

	// Close stops the background work: it returns (it waits for it).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.Ready() {
		t.Error("Ready after Close")
	}
}

// Options that can never work fail Open at once, server or no server.
func TestOpenBadOptions(t *testing.T) {
	dir := t.TempDir()
	badYAML := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(badYAML, []byte("username: u\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const unreachable = "nats://127.0.0.1:1" // nothing listens on port 1
	for _, tc := range []struct {
		name string
		o    natskv.Options
	}{
		{"empty URL", natskv.Options{}},
		{"missing auth file", natskv.Options{URL: unreachable, AuthFile: filepath.Join(dir, "missing")}},
		{"auth file without password", natskv.Options{URL: unreachable, AuthFile: badYAML}},
		{"auth file and password", natskv.Options{URL: unreachable, AuthFile: badYAML, User: "u", Password: "p"}},
		{"missing CA file", natskv.Options{URL: unreachable, CAFile: filepath.Join(dir, "missing.pem")}},
		{"CA file without a certificate", natskv.Options{URL: unreachable, CAFile: notPEM}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tryOpen(t, tc.o)
			if err == nil {
				t.Fatalf("Open succeeded (ready %v)", s.Ready())
			}
			if errors.Is(err, store.ErrUnavailable) {
				t.Errorf("Open: %v matches ErrUnavailable, but retrying cannot fix it", err)
			}
		})
	}
}

func TestInvalidFingerprint(t *testing.T) {
	ns := startServer(t, nil)
	s := open(t, natskv.Options{URL: ns.ClientURL()})
	ctx := ctxTimeout(t, 5*time.Second)
	for _, fp := range []string{"", "abc", "0123456789ABCDEF", "0123456789abcdef0", "0123456789abcdeg", "lock.0123456789a", "0123456789abcde*", "01234567>9abcdef"} {
		unlock, err := s.Lock(ctx, fp, time.Minute)
		if !errors.Is(err, natskv.ErrInvalidFingerprint) || errors.Is(err, store.ErrUnavailable) || unlock != nil {
			t.Errorf("Lock(%q): %v", fp, err)
		}
		if _, _, err := s.Get(ctx, fp); !errors.Is(err, natskv.ErrInvalidFingerprint) {
			t.Errorf("Get(%q): %v", fp, err)
		}
		if _, err := s.Put(ctx, store.Record{Fingerprint: fp}); !errors.Is(err, natskv.ErrInvalidFingerprint) {
			t.Errorf("Put(%q): %v", fp, err)
		}
	}
	if _, err := s.Lock(ctx, "0123456789abcdef", 0); err == nil {
		t.Error("Lock with ttl 0 succeeded")
	}
}

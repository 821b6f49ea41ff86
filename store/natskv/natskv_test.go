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

// startCluster runs n JetStream servers routed to each other, like the
// EventBus StatefulSet.
func startCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		// Reserve a port for each node's cluster listener, so that every
		// node can be given the full route list up front.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		l.Close()
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	servers := make([]*server.Server, n)
	for i := range n {
		servers[i] = run(t, &server.Options{
			ServerName: fmt.Sprintf("node-%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "eventbus", Host: "127.0.0.1", Port: ports[i]},
			Routes:     server.RoutesFromStr(strings.Join(routes, ",")),
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range servers {
		for ns.NumRoutes() < n-1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s has %d routes, want %d", ns.Name(), ns.NumRoutes(), n-1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return servers
}

func open(t *testing.T, o natskv.Options) *natskv.Store {
	t.Helper()
	s, err := tryOpen(t, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
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

// rawKV opens the bucket with a plain client, to look at what the store
// wrote.
func rawKV(t *testing.T, url, bucket string) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
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

// TestCluster runs against a 3-node cluster with an R3 bucket, the
// EventBus's shape. CAS conflicts then come back as error 10164 rather
// than 10071.
func TestCluster(t *testing.T) {
	servers := startCluster(t, 3)
	const bucket = "cluster"
	// Replicas connect to different nodes, round robin.
	var next atomic.Int32
	openNext := func(t *testing.T) *natskv.Store {
		ns := servers[int(next.Add(1)-1)%len(servers)]
		return open(t, natskv.Options{URL: ns.ClientURL(), Bucket: bucket, Replicas: 3})
	}
	// The first Open waits out the meta leader election.
	openNext(t)

	t.Run("BucketIsR3", func(t *testing.T) {
		st, err := rawKV(t, servers[1].ClientURL(), bucket).Status(ctxTimeout(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if info := st.(*jetstream.KeyValueBucketStatus).StreamInfo(); info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Errorf("bucket not R3: config replicas %d, cluster %+v", info.Config.Replicas, info.Cluster)
		}
	})
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return openNext(t) })
	})
	t.Run("LapsedLockTakeoverRace", func(t *testing.T) {
		testTakeoverRace(t, []*natskv.Store{openNext(t), openNext(t), openNext(t)})
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
	// it a new CreatedAt rather than the old one.
	old, _, _ := s.Get(ctx, fp)
	time.Sleep(10 * time.Millisecond)
	if _, err := s.Put(ctx, store.Record{Fingerprint: fp, Revision: old.Revision}); err != nil {
		t.Fatal(err)
	}
	if fresh, _, _ := s.Get(ctx, fp); !fresh.CreatedAt.After(old.CreatedAt) || fresh.JiraKey != "" {
		t.Errorf("fresh record %+v, old CreatedAt %v", fresh, old.CreatedAt)
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
		{name: "whitespace", in: "  \n\tusername:    u  \n password:\tp \t\n\n", user: "u", pass: "p"},
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

	const bound = 2 * time.Second
	check := func(what string, f func(ctx context.Context) error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), bound)
		defer cancel()
		start := time.Now()
		err := f(ctx)
		elapsed := time.Since(start)
		if !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v, want store.ErrUnavailable", what, err)
		}
		if elapsed > bound+500*time.Millisecond {
			t.Errorf("%s took %v, bound %v", what, elapsed, bound)
		}
		t.Logf("%s: %v after %v", what, err, elapsed.Round(time.Millisecond))
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

	start := time.Now()
	held() // must give up within its own timeout, not hang
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("unlock with the server down took %v", d)
	}

	// Open fails too, and says the store is unavailable.
	if _, err := tryOpen(t, natskv.Options{URL: ns.ClientURL()}); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Open with the server down: %v, want store.ErrUnavailable", err)
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

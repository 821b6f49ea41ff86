// Package natskv is the idempotency store shared by all replicas of the
// function: records and per-fingerprint locks live in a NATS JetStream
// key-value bucket, typically on the Argo Events EventBus the rollback
// events already travel through.
//
// Keys in the bucket:
//
//	rec.<fingerprint>   JSON-encoded store.Record
//	lock.<fingerprint>  JSON {"owner":"<random id>","expires":<unix nano>}
//	pend.<fingerprint>  the index of pending records: present (the time
//	                    custody began) while rec.<fingerprint> is pending
//
// A record is written with a compare-and-swap on the revision it was read
// at. The pending index is written before a pending record and deleted
// after a finished one, so it may name a finished record for a moment but
// never misses a pending one.
//
// The lock is claimed with kv.Create, which the server applies atomically
// (through RAFT on a replicated bucket), so exactly one caller wins. It does
// not rely on per-key TTL: that needs nats-server 2.11 and the EventBus runs
// 2.10 or older. Instead the value carries its own expiry; a waiter that
// finds it expired takes it over with a compare-and-swap on the revision,
// and a holder releases only the revision it wrote. The bucket TTL (stream
// MaxAge, counted from a key's last write) is what eventually removes old
// records and stray lock keys.
//
// Lock expiry compares the holder's clock with the waiter's, so replicas'
// clocks must agree to well within the lock ttl (NTP gives milliseconds;
// the handler's ttl is tens of seconds).
package natskv

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"function/store"
)

// Defaults for Options.
const (
	DefaultBucket = "rollback-incident"
	DefaultTTL    = 7 * 24 * time.Hour
)

const (
	recPrefix  = "rec."
	lockPrefix = "lock."
	pendPrefix = "pend."

	// Waiting for a held lock polls with jittered exponential backoff: a
	// handler holds the lock for one Jira/Confluence round of a few hundred
	// milliseconds, so waiters should notice its release quickly without
	// hammering the server.
	minBackoff = 5 * time.Millisecond
	maxBackoff = 100 * time.Millisecond

	// unlockTimeout bounds the release, which runs from a defer after the
	// request's ctx may have ended. If it fails the lock lapses after its
	// ttl anyway.
	unlockTimeout = 5 * time.Second

	// A freshly started cluster answers JetStream API calls with errors
	// until it has elected its meta leader; bucket creation retries for
	// this long, each attempt bounded by bucketAttemptTimeout.
	bucketRetryFor       = 20 * time.Second
	bucketAttemptTimeout = 3 * time.Second

	// opTimeout bounds each KV request even when the caller's ctx is
	// longer: a request caught by a server going away is otherwise only
	// answered by that ctx, and a store that does not answer in seconds
	// should fail closed rather than hold the caller.
	opTimeout = 5 * time.Second

	minRedactLen = 4

	connectTimeout = 5 * time.Second
	reconnectWait  = time.Second
)

// JetStream API error codes for "wrong last sequence": the server's answer
// to a lost compare-and-swap. Replicated streams on server ≥ 2.11 answer
// 10164 instead of 10071; nats.go maps both to ErrKeyExists from v1.53 on,
// but not on every path (Create's retry over a delete marker returns the
// raw API error), so the codes are checked as well.
const (
	errCodeWrongLastSeq         = 10071
	errCodeWrongLastSeqConstant = 10164
)

// ErrInvalidFingerprint is returned for a fingerprint that is not 16
// lowercase hex characters. It is a caller bug, not an outage, so it does
// not wrap store.ErrUnavailable.
var ErrInvalidFingerprint = errors.New("natskv: invalid fingerprint (want 16 lowercase hex characters)")

// Options configure Open. Only URL is required.
type Options struct {
	// URL of the NATS server(s), comma separated, e.g.
	// nats://eventbus-default-js-svc.argo-events.svc:4222.
	URL string
	// User and Password for user/password auth. Leave empty when AuthFile
	// is set.
	User, Password string
	// AuthFile is the Argo Events EventBus client-auth secret mounted as a
	// file, YAML "username: x\npassword: y".
	AuthFile string
	// CAFile is a PEM bundle to verify the server certificate with (the
	// EventBus's self-signed CA). Setting it turns TLS on.
	CAFile string
	// TLSServerName is the name expected in the server certificate when it
	// differs from the URL's host (the EventBus certificate names
	// eventbus-<name>-js-svc.<ns>.svc). Setting it turns TLS on.
	TLSServerName string
	// InsecureSkipVerify uses TLS without verifying the server
	// certificate. It is what Argo's own clients do with the EventBus; it
	// protects against passive eavesdropping only.
	InsecureSkipVerify bool
	// Bucket is the KV bucket name; default DefaultBucket.
	Bucket string
	// Replicas of the bucket; default 1. Use 3 on a 3-node EventBus.
	Replicas int
	// TTL is how long a record lives after its last write; default
	// DefaultTTL. It must outlast the senders' redelivery window.
	TTL time.Duration
	// Name identifies the connection in the server's monitoring.
	Name string
	// Logger gets connection events and lock anomalies; default
	// slog.Default().
	Logger *slog.Logger
}

// Store is a store.Store over a JetStream KV bucket. It is safe for
// concurrent use.
type Store struct {
	nc  *nats.Conn
	kv  jetstream.KeyValue
	log *slog.Logger
}

var _ store.Store = (*Store)(nil)

// Open connects to NATS and creates the bucket, or updates its settings to
// o's, so that every replica converges on the same configuration. It
// fails if the server cannot be reached; it does not wait for one to come
// up. Connection and bucket errors wrap store.ErrUnavailable. Errors never
// contain the password: nats.go does not echo it, and as a safeguard any
// occurrence of it (or of a password in the URL) of 4 or more characters
// is replaced by [REDACTED].
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.URL == "" {
		return nil, errors.New("natskv: no URL")
	}
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "natskv", "bucket", o.Bucket)

	user, pass := o.User, o.Password
	if o.AuthFile != "" {
		if user != "" || pass != "" {
			return nil, errors.New("natskv: set either User/Password or AuthFile, not both")
		}
		data, err := os.ReadFile(o.AuthFile)
		if err != nil {
			return nil, fmt.Errorf("natskv: read auth file: %w", err)
		}
		if user, pass, err = ParseAuthFile(data); err != nil {
			return nil, fmt.Errorf("natskv: auth file %s: %w", o.AuthFile, err)
		}
	}
	// Secrets that must not show up in errors: the password, and one
	// embedded in the URL.
	secrets := []string{pass}
	safeURL := redactURLs(o.URL, &secrets)
	fail := func(format string, err error) error {
		return redact(fmt.Errorf(format, safeURL, store.ErrUnavailable, err), secrets)
	}

	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}

	// nats.Connect takes no ctx; its dial and handshake timeout stands in.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natskv: connect to %s: %w", safeURL, err)
	}
	timeout := connectTimeout
	if d, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(d)), time.Millisecond)
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(timeout),
		// The function may outlive any number of EventBus restarts.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		// No buffering while disconnected: a request then fails at once and
		// the caller answers 503, instead of hanging until its deadline on
		// a write that may or may not be applied later.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", redact(err, secrets))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Warn("nats async error", "err", redact(err, secrets))
		}),
	}
	if user != "" || pass != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	if tlsConfig != nil {
		opts = append(opts, nats.Secure(tlsConfig))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fail("natskv: connect to %s: %w: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fail("natskv: jetstream on %s: %w: %w", err)
	}
	kv, err := ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      o.Bucket,
		Description: "rollback incident idempotency records and locks",
		History:     1, // only the latest value matters; CAS works on it
		TTL:         o.TTL,
		Replicas:    o.Replicas,
		Storage:     jetstream.FileStorage, // records must survive a server restart
	}, log)
	if err != nil {
		nc.Close()
		return nil, fail("natskv: bucket on %s: %w: %w", err)
	}
	log.Debug("nats kv store open", "url", nc.ConnectedUrlRedacted(), "replicas", o.Replicas, "ttl", o.TTL)
	return &Store{nc: nc, kv: kv, log: log}, nil
}

// tlsConfig returns nil when no TLS option is set; nats.go then still
// upgrades to TLS, verifying against the system roots, if the server
// demands it.
func (o Options) tlsConfig() (*tls.Config, error) {
	if o.CAFile == "" && o.TLSServerName == "" && !o.InsecureSkipVerify {
		return nil, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         o.TLSServerName,
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // opt-in, mirrors Argo's own EventBus clients
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("natskv: read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("natskv: CA file %s holds no PEM certificate", o.CAFile)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// ensureBucket creates or updates the bucket, retrying while a cluster is
// still electing its meta leader (the API then answers "temporarily
// unavailable", no responders, or not at all).
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, log *slog.Logger) (jetstream.KeyValue, error) {
	giveUp := time.Now().Add(bucketRetryFor)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, bucketAttemptTimeout)
		kv, err := js.CreateOrUpdateKeyValue(actx, cfg)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("bucket ready", "attempts", attempt)
			}
			return kv, nil
		}
		if permanentBucketError(err) || ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			return nil, fmt.Errorf("create or update bucket %s (attempt %d): %w", cfg.Bucket, attempt, err)
		}
		log.Debug("bucket not ready, retrying", "attempt", attempt, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("create or update bucket %s (attempt %d): %w", cfg.Bucket, attempt, err)
		}
		wait = min(2*wait, time.Second)
	}
}

// permanentBucketError reports errors that retrying cannot fix.
func permanentBucketError(err error) bool {
	return errors.Is(err, jetstream.ErrInvalidBucketName) ||
		errors.Is(err, jetstream.ErrHistoryTooLarge) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, nats.ErrPermissionViolation)
}

// Close closes the connection. Locks still held lapse after their ttl.
func (s *Store) Close() error {
	s.nc.Close()
	return nil
}

// lockValue is the JSON value of a lock key. Owner (random per Lock call)
// only tells holders apart when someone inspects the bucket; release goes
// by revision, which the server makes unique per write.
type lockValue struct {
	Owner   string `json:"owner"`
	Expires int64  `json:"expires"` // unix nanoseconds, holder's clock
}

// Lock implements store.Store. While a live holder has the lock it polls
// with jittered exponential backoff (5 ms up to 100 ms) until ctx ends, and
// then returns ctx's error. A NATS failure returns an error wrapping
// store.ErrUnavailable at once: without the lock the caller must not work.
func (s *Store) Lock(ctx context.Context, fingerprint string, ttl time.Duration) (func(), error) {
	if err := checkFingerprint(fingerprint); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("natskv: lock %s: ttl %v is not positive", fingerprint, ttl)
	}
	key := lockPrefix + fingerprint
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("natskv: lock %s: owner id: %w", fingerprint, err)
	}
	owner := hex.EncodeToString(id[:])

	backoff := minBackoff
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("natskv: lock %s: %w", fingerprint, err)
		}
		rev, st, err := s.tryLock(ctx, key, owner, ttl)
		switch {
		case err != nil:
			return nil, fmt.Errorf("natskv: lock %s: %w", fingerprint, err)
		case st == acquired:
			return s.unlocker(key, rev), nil
		case st == contended:
			continue // the key changed under us: look again at once
		}
		// Jitter spreads waiters on different replicas apart, so they do
		// not all retry in the same instant after a release.
		d := backoff/2 + mrand.N(backoff/2+1)
		if err := sleep(ctx, d); err != nil {
			return nil, fmt.Errorf("natskv: lock %s: %w", fingerprint, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

type lockState int

const (
	acquired  lockState = iota
	busy                // a live holder has it: wait
	contended           // it vanished or was taken over meanwhile: retry now
)

// tryLock makes one attempt: claim a free key, or take over an expired one.
func (s *Store) tryLock(ctx context.Context, key, owner string, ttl time.Duration) (uint64, lockState, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	val, err := json.Marshal(lockValue{Owner: owner, Expires: time.Now().Add(ttl).UnixNano()})
	if err != nil {
		return 0, 0, err
	}
	rev, err := s.kv.Create(ctx, key, val)
	if err == nil {
		return rev, acquired, nil
	}
	if !isConflict(err) {
		return 0, 0, unavailable(ctx, "claim", err)
	}

	entry, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, contended, nil // released between our Create and Get
	}
	if err != nil {
		return 0, 0, unavailable(ctx, "read", err)
	}
	var cur lockValue
	if err := json.Unmarshal(entry.Value(), &cur); err != nil {
		// Nobody could ever release a value we cannot read; treating it as
		// expired keeps the fingerprint from being blocked until the bucket
		// TTL removes it.
		s.log.Warn("unreadable lock value, taking it over", "key", key, "revision", entry.Revision(), "err", err)
	} else if time.Now().UnixNano() <= cur.Expires {
		return 0, busy, nil
	} else {
		s.log.Warn("lock lapsed, taking it over: its holder ran past the ttl or died",
			"key", key, "expired", time.Unix(0, cur.Expires), "revision", entry.Revision())
	}
	// The CAS on the revision we read makes the takeover atomic: of several
	// waiters that saw the same expired value, one wins.
	rev, err = s.kv.Update(ctx, key, val, entry.Revision())
	if err == nil {
		return rev, acquired, nil
	}
	if isConflict(err) {
		return 0, contended, nil
	}
	return 0, 0, unavailable(ctx, "take over", err)
}

// unlocker returns the release for the lock we hold at revision rev. It
// deletes the key only while that revision is still the latest: if the
// lock lapsed and someone took it over, the delete fails its CAS and the
// new holder keeps the lock.
func (s *Store) unlocker(key string, rev uint64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			// Not the caller's ctx: unlock usually runs deferred, after
			// that ctx may have ended, and must still release.
			ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
			defer cancel()
			err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
			switch {
			case err == nil:
			case isConflict(err):
				s.log.Warn("lock lapsed and was taken over before unlock: the work ran past the lock ttl", "key", key, "revision", rev)
			default:
				s.log.Warn("unlock failed; the lock lapses after its ttl", "key", key, "revision", rev, "err", err)
			}
		})
	}
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, fingerprint string) (store.Record, bool, error) {
	if err := checkFingerprint(fingerprint); err != nil {
		return store.Record{}, false, err
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	entry, err := s.kv.Get(ctx, recPrefix+fingerprint)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return store.Record{}, false, nil
	}
	if err != nil {
		return store.Record{}, false, fmt.Errorf("natskv: get record %s: %w", fingerprint, unavailable(ctx, "read", err))
	}
	var r store.Record
	if err := json.Unmarshal(entry.Value(), &r); err != nil {
		// Not ErrUnavailable: retrying will not fix it. The caller must
		// not treat it as "no record" either, or it would open a duplicate.
		return store.Record{}, false, fmt.Errorf("natskv: decode record %s (revision %d): %w", fingerprint, entry.Revision(), err)
	}
	if r.Fingerprint == "" {
		r.Fingerprint = fingerprint
	}
	r.Revision = entry.Revision()
	return r, true, nil
}

// Put implements store.Store. It sets CreatedAt when r has none (a first
// save, or a record started afresh) and UpdatedAt always, and writes only
// over r.Revision: Create when it is 0, else Update with that revision.
func (s *Store) Put(ctx context.Context, r store.Record) (store.Record, error) {
	if err := checkFingerprint(r.Fingerprint); err != nil {
		return store.Record{}, err
	}
	now := time.Now().UTC()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.UpdatedAt = now
	val, err := json.Marshal(r)
	if err != nil {
		return store.Record{}, fmt.Errorf("natskv: encode record %s: %w", r.Fingerprint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	if r.Pending != nil {
		since, _ := r.Pending.Since.MarshalText()
		if _, err := s.kv.Put(ctx, pendPrefix+r.Fingerprint, since); err != nil {
			return store.Record{}, fmt.Errorf("natskv: index pending record %s: %w", r.Fingerprint, unavailable(ctx, "write", err))
		}
	}
	var rev uint64
	if r.Revision == 0 {
		rev, err = s.kv.Create(ctx, recPrefix+r.Fingerprint, val)
	} else {
		rev, err = s.kv.Update(ctx, recPrefix+r.Fingerprint, val, r.Revision)
	}
	if isConflict(err) {
		return store.Record{}, fmt.Errorf("natskv: put record %s at revision %d: %w", r.Fingerprint, r.Revision, store.ErrConflict)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("natskv: put record %s: %w", r.Fingerprint, unavailable(ctx, "write", err))
	}
	r.Revision = rev
	if r.Pending == nil {
		// Best effort: a stale index entry costs the drainer one read.
		if err := s.kv.Delete(ctx, pendPrefix+r.Fingerprint); err != nil {
			s.log.Warn("pending index not cleared; the drainer will skip it", "fingerprint", r.Fingerprint, "err", err)
		}
	}
	return r, nil
}

// Pending implements store.Store: the keys of the pending index.
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	lister, err := s.kv.ListKeysFiltered(ctx, pendPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("natskv: list pending: %w", unavailable(ctx, "list", err))
	}
	var fps []string
	for key := range lister.Keys() {
		fps = append(fps, strings.TrimPrefix(key, pendPrefix))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natskv: list pending: %w", unavailable(ctx, "list", err))
	}
	return fps, nil
}

// isConflict reports a lost compare-and-swap: the key exists (Create) or
// has moved past the expected revision (Update, Delete).
func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == errCodeWrongLastSeq || apiErr.ErrorCode == errCodeWrongLastSeqConstant)
}

// unavailable wraps a NATS failure in store.ErrUnavailable, so the caller
// fails closed (503, the sender retries). If ctx ended meanwhile the error
// also matches ctx's error, whatever nats.go made of it.
func unavailable(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s: %w: %w (%w)", op, store.ErrUnavailable, err, cerr)
	}
	return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
}

func checkFingerprint(fp string) error {
	ok := len(fp) == 16
	for i := 0; ok && i < len(fp); i++ {
		c := fp[i]
		ok = '0' <= c && c <= '9' || 'a' <= c && c <= 'f'
	}
	if ok {
		return nil
	}
	if len(fp) > 40 {
		fp = fp[:40] + "…"
	}
	return fmt.Errorf("%w: %q", ErrInvalidFingerprint, fp)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ParseAuthFile reads the client-auth YAML that Argo Events writes for the
// EventBus ("username: abc\npassword: def"). It accepts the plain, single-
// and double-quoted scalars YAML allows there, comments, CRLF line ends and
// a leading "---"; it is not a general YAML parser. Errors name the line,
// never its content, as that may be the password.
func ParseAuthFile(data []byte) (user, pass string, err error) {
	text := strings.TrimPrefix(string(data), "\ufeff")
	var haveUser, havePass bool
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || line == "---" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, found := strings.Cut(line, ":")
		if !found {
			return "", "", fmt.Errorf("line %d: no \"key: value\"", i+1)
		}
		key = strings.TrimSpace(key)
		if key != "username" && key != "password" {
			continue
		}
		v, err := yamlScalar(strings.TrimSpace(value))
		if err != nil {
			return "", "", fmt.Errorf("line %d (%s): %w", i+1, key, err)
		}
		if key == "username" {
			user, haveUser = v, true
		} else {
			pass, havePass = v, true
		}
	}
	switch {
	case !haveUser || user == "":
		return "", "", errors.New("no username")
	case !havePass || pass == "":
		return "", "", errors.New("no password")
	}
	return user, pass, nil
}

// yamlScalar decodes a one-line YAML scalar: "double quoted" (JSON-style
// escapes), 'single quoted' (a doubled ' is one quote), or plain (ends at " #").
func yamlScalar(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		end := closingDoubleQuote(s)
		if end < 0 {
			return "", errors.New("unterminated double quote")
		}
		var v string
		if err := json.Unmarshal([]byte(s[:end+1]), &v); err != nil {
			return "", errors.New("bad escape in double-quoted value")
		}
		if err := trailer(s[end+1:]); err != nil {
			return "", err
		}
		return v, nil
	case strings.HasPrefix(s, "'"):
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '\'' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			if err := trailer(s[i+1:]); err != nil {
				return "", err
			}
			return b.String(), nil
		}
		return "", errors.New("unterminated single quote")
	default:
		if i := strings.Index(s, " #"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "\t#"); i >= 0 {
			s = s[:i]
		}
		return strings.TrimSpace(s), nil
	}
}

func closingDoubleQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// trailer accepts what may follow a quoted scalar: nothing or a comment.
func trailer(rest string) error {
	rest = strings.TrimSpace(rest)
	if rest == "" || strings.HasPrefix(rest, "#") {
		return nil
	}
	return errors.New("text after closing quote")
}

// redactURLs returns urls (comma separated) with any password replaced,
// and adds such passwords to secrets.
func redactURLs(urls string, secrets *[]string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "<unparsable url>" // may hold a password we cannot find
			continue
		}
		if pw, ok := u.User.Password(); ok && pw != "" {
			*secrets = append(*secrets, pw)
		}
		parts[i] = u.Redacted()
	}
	return strings.Join(parts, ",")
}

// redact hides secrets in err's text. Belt and braces: nats.go does not
// echo credentials today. A redacted error cannot unwrap to the original
// (whose text holds the secret), so it keeps only whether it is
// store.ErrUnavailable.
func redact(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, s := range secrets {
		// Shorter strings occur in ordinary words ("p" in "unavailable")
		// and are no secret worth garbling every message for.
		if len(s) >= minRedactLen && strings.Contains(msg, s) {
			msg = strings.ReplaceAll(msg, s, "[REDACTED]")
			changed = true
		}
	}
	if !changed {
		return err
	}
	return &redactedError{msg: msg, unavailable: errors.Is(err, store.ErrUnavailable)}
}

type redactedError struct {
	msg         string
	unavailable bool
}

func (e *redactedError) Error() string { return e.msg }

func (e *redactedError) Is(target error) bool {
	return e.unavailable && target == store.ErrUnavailable
}

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
// # Current reads
//
// A KV Get (nats.go kv.Get) on a replicated bucket is a "direct get" that
// any replica may answer, and a follower answers with what it has applied
// so far: right after a write acknowledged through one node, another node
// may still return the previous value (nats-server issue 6557; servers
// offer read-after-write only from 2.12 on, and the EventBus runs 2.10).
// So every read here is a JetStream message get ($JS.API.STREAM.MSG.GET),
// which only the stream leader answers, and the leader acknowledges a
// write only after applying it. This works on every server from 2.9 on.
// What it cannot rule out is a deposed leader that has not yet noticed it
// lost its quorum answering in the seconds of a network partition; the
// compare-and-swap below still keeps such a read from overwriting anything.
//
// # Writes
//
// A record is written with a compare-and-swap on the revision it was read
// at: Create (expect no message, or the delete marker read) for revision
// 0, else Update with that revision. A lost race is store.ErrConflict,
// never store.ErrUnavailable.
//
// The pending index is written before a pending record, and removed after
// a finished one only while its own revision is older than the finished
// record's: any writer that made the record pending again wrote a newer
// index entry first. It is removed with a purge of that one subject up to
// that revision, which leaves no delete marker behind and can never remove
// a newer entry, so listing the index costs one message get per pending
// record. The index may name a finished record for a moment; it never
// misses a pending one.
//
// # Locks
//
// The lock is claimed with a compare-and-swap on the state read from the
// leader: no key, or the delete marker a release left, or an expired
// value. The server applies it atomically (through RAFT on a replicated
// bucket), so of the callers that saw one state exactly one wins; while a
// live holder has the lock, waiting costs reads only. It does not rely on
// per-key TTL: that needs nats-server 2.11 and the EventBus runs 2.10 or
// older. Instead the value carries its own expiry, and a holder releases
// only the revision it wrote. The bucket TTL (stream
// MaxAge, counted from a key's last write) is what eventually removes old
// records and stray lock keys.
//
// Lock expiry compares the holder's clock with the waiter's, so replicas'
// clocks must agree to well within the lock ttl (NTP gives milliseconds;
// the handler's ttl is tens of seconds).
//
// # Availability
//
// Open does not need the server: an EventBus that is restarting when the
// function starts must not make it crash-loop. The connection retries for
// ever and the bucket is bound in the background; until both are there
// (see Ready), and whenever the connection is down, every operation fails
// at once with an error wrapping store.ErrUnavailable, which the handler
// answers with 503 so that the sender retries.
package natskv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
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
	// A freshly started cluster answers JetStream API calls with errors
	// until it has elected its meta leader; Open waits this long at most
	// for the bucket before leaving it to the background, each attempt
	// bounded by bucketAttemptTimeout.
	bucketRetryFor       = 20 * time.Second
	bucketAttemptTimeout = 3 * time.Second

	// The background binding retries with jittered exponential backoff
	// between these, and at once when the connection comes (back) up.
	minBindBackoff = 100 * time.Millisecond
	maxBindBackoff = 5 * time.Second

	// firstErrWait bounds how long Open waits to learn why the first
	// connection attempt failed; nats.go reports it asynchronously, right
	// after Connect returns.
	firstErrWait = 2 * time.Second

	minRedactLen = 4

	dialTimeout   = 2 * time.Second
	reconnectWait = time.Second
)

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
	nc     *nats.Conn
	js     jetstream.JetStream
	cfg    jetstream.KeyValueConfig
	stream string // the bucket's stream, KV_<bucket>
	subj   string // the subject prefix of its keys, $KV.<bucket>.
	log    *slog.Logger

	// kv is the bound bucket, nil until it is (or after it vanished).
	kv atomic.Pointer[bucket]
	// kick wakes the binder: the connection came up, or the bucket vanished.
	kick chan struct{}

	stop      context.CancelFunc
	done      chan struct{} // closed when the binder has returned
	closeOnce sync.Once
}

// bucket is the bound bucket, boxed so it can be swapped atomically.
type bucket struct{ kv jetstream.KeyValue }

var _ store.Store = (*Store)(nil)

// Open returns a store on the bucket o names. Errors in o fail it at once:
// no URL, an unreadable auth or CA file, both User/Password and AuthFile.
// So does a server that is reached and refuses us (wrong credentials, a
// certificate that does not verify), and a bucket the server will never
// create (an invalid name, JetStream not enabled for the account): those
// are configuration errors that retrying cannot fix.
//
// A server that cannot be reached is not an error: Open returns a Store
// that keeps connecting in the background (without limit) and creates or
// binds the bucket once connected; Ready reports when it can serve. When
// the server is up, Open waits for the bucket until ctx ends or for 20s at
// most (a new cluster first elects its meta leader), so a caller that
// wants a quick start passes a short ctx. The bucket is created, or its
// settings updated to o's, so that every replica converges on the same
// configuration.
//
// Errors never contain the password: nats.go does not echo it, and as a
// safeguard any occurrence of it (or of a password in the URL) of 4 or more
// characters is replaced by [REDACTED]. Close the Store to stop its
// background work.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.URL == "" {
		return nil, errors.New("natskv: no URL")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natskv: open: %w", err)
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

	tlsConfig, err := o.tlsConfig()
	if err != nil {
		return nil, err
	}

	s := &Store{
		cfg: jetstream.KeyValueConfig{
			Bucket:      o.Bucket,
			Description: "rollback incident idempotency records and locks",
			History:     1, // only the latest value matters; CAS works on it
			TTL:         o.TTL,
			Replicas:    o.Replicas,
			Storage:     jetstream.FileStorage, // records must survive a server restart
		},
		stream: "KV_" + o.Bucket,
		subj:   "$KV." + o.Bucket + ".",
		log:    log,
		kick:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	// nats.go reports why the first connection attempt failed on its
	// callback goroutine only.
	firstErr := make(chan error, 1)
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(dialTimeout),
		// An EventBus restarting when we start is an outage like any
		// other: keep trying, in the background.
		nats.RetryOnFailedConnect(true),
		// The function may outlive any number of EventBus restarts.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		// No buffering while disconnected: a request then fails at once and
		// the caller answers 503, instead of hanging until its deadline on
		// a write that may or may not be applied later.
		nats.ReconnectBufSize(-1),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "url", nc.ConnectedUrlRedacted())
			s.wake()
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
			s.wake()
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			select {
			case firstErr <- err:
			default:
			}
			log.Debug("nats connect attempt failed", "err", redact(err, secrets))
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", redact(err, secrets))
			}
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
		// With RetryOnFailedConnect only bad options get here.
		return nil, redact(fmt.Errorf("natskv: connect to %s: %w", safeURL, err), secrets)
	}
	s.nc = nc
	if !nc.IsConnected() {
		var why error
		select {
		case why = <-firstErr:
		case <-time.After(firstErrWait):
		case <-ctx.Done():
		}
		if refused(why) {
			nc.Close()
			return nil, redact(fmt.Errorf("natskv: connect to %s: %w: %w", safeURL, store.ErrUnavailable, why), secrets)
		}
		log.Warn("nats unreachable, connecting in the background", "url", safeURL, "err", redact(why, secrets))
	}
	if s.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, redact(fmt.Errorf("natskv: jetstream on %s: %w", safeURL, err), secrets)
	}

	if nc.IsConnected() {
		wctx, cancel := context.WithTimeout(ctx, bucketRetryFor)
		err := s.bindWaiting(wctx)
		cancel()
		if err != nil && permanentBucketError(err) {
			nc.Close()
			return nil, redact(fmt.Errorf("natskv: bucket %s on %s: %w: %w", o.Bucket, safeURL, store.ErrUnavailable, err), secrets)
		}
		if err != nil {
			log.Warn("bucket not ready, binding it in the background", "err", redact(err, secrets))
		}
	}
	bctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.binder(bctx, secrets)
	log.Debug("nats kv store open", "url", safeURL, "ready", s.Ready(), "replicas", o.Replicas, "ttl", o.TTL)
	return s, nil
}

// Ready reports whether the store can serve: connected, with the bucket
// bound. Operations on a store that is not ready fail at once with an
// error wrapping store.ErrUnavailable.
func (s *Store) Ready() bool {
	return s.nc.IsConnected() && s.kv.Load() != nil
}

// Close stops the background work and closes the connection. Locks still
// held lapse after their ttl. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stop()
		<-s.done
		s.nc.Close()
	})
	return nil
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

// refused reports a first connection that reached a server which turned
// us away: wrong credentials, a certificate that does not verify, TLS on
// one side only. Retrying cannot fix those, so Open fails on them rather
// than leave a store that never becomes ready.
func refused(err error) bool {
	if err == nil {
		return false
	}
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
	)
	return errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) ||
		errors.Is(err, nats.ErrAccountAuthExpired) ||
		errors.Is(err, nats.ErrSecureConnWanted) ||
		errors.Is(err, nats.ErrSecureConnRequired) ||
		errors.As(err, &verify) || errors.As(err, &authority) ||
		errors.As(err, &hostname) || errors.As(err, &invalid)
}

// bindWaiting binds the bucket, retrying while a cluster is still electing
// its meta leader (the API then answers "temporarily unavailable", no
// responders, or not at all), until ctx ends or an error retrying cannot
// fix.
func (s *Store) bindWaiting(ctx context.Context) error {
	wait := minBindBackoff
	for attempt := 1; ; attempt++ {
		err := s.bindOnce(ctx)
		if err == nil {
			if attempt > 1 {
				s.log.Info("bucket ready", "attempts", attempt)
			}
			return nil
		}
		if permanentBucketError(err) {
			return err
		}
		if serr := sleep(ctx, wait); serr != nil {
			return fmt.Errorf("bind bucket %s (attempt %d): %w (%w)", s.cfg.Bucket, attempt, err, serr)
		}
		wait = min(2*wait, time.Second)
	}
}

// bindOnce creates or updates the bucket and makes it the store's.
func (s *Store) bindOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, bucketAttemptTimeout)
	defer cancel()
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, s.cfg)
	if err != nil {
		return fmt.Errorf("create or update bucket %s: %w", s.cfg.Bucket, err)
	}
	s.kv.Store(&bucket{kv: kv})
	return nil
}

// binder runs for the life of the Store: it binds the bucket whenever it
// is not bound (not yet, or it vanished) and the connection is up, with
// jittered exponential backoff, until ctx ends.
func (s *Store) binder(ctx context.Context, secrets []string) {
	defer close(s.done)
	wait, attempt := minBindBackoff, 0
	for {
		var retry <-chan time.Time
		var timer *time.Timer
		if s.kv.Load() == nil {
			if s.nc.IsConnected() {
				attempt++
				err := s.bindOnce(ctx)
				if err == nil {
					s.log.Info("bucket ready", "attempts", attempt)
					wait, attempt = minBindBackoff, 0
					continue
				}
				if ctx.Err() != nil {
					return
				}
				if attempt == 1 || attempt%10 == 0 || permanentBucketError(err) {
					s.log.Warn("bucket not ready, retrying", "attempt", attempt, "err", redact(err, secrets))
				}
			}
			timer = time.NewTimer(wait/2 + mrand.N(wait/2+1))
			retry = timer.C
			wait = min(2*wait, maxBindBackoff)
		}
		select {
		case <-ctx.Done():
		case <-s.kick:
			wait = minBindBackoff
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// wake tells the binder to look again now.
func (s *Store) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// unbind forgets a bucket the server no longer has, so that the binder
// creates it again.
func (s *Store) unbind(b *bucket) {
	if s.kv.CompareAndSwap(b, nil) {
		s.log.Warn("bucket vanished from the server; creating it again")
		s.wake()
	}
}

// permanentBucketError reports errors that retrying cannot fix.
func permanentBucketError(err error) bool {
	return errors.Is(err, jetstream.ErrInvalidBucketName) ||
		errors.Is(err, jetstream.ErrHistoryTooLarge) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled) ||
		errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrAuthorization) ||
		errors.Is(err, nats.ErrPermissionViolation)
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

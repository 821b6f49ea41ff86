package natskv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"function/store"
)

const (
	recPrefix  = "rec."
	lockPrefix = "lock."
	pendPrefix = "pend."

	// opTimeout bounds each KV request even when the caller's ctx is
	// longer: a request caught by a server going away is otherwise only
	// answered by that ctx, and a store that does not answer in seconds
	// should fail closed rather than hold the caller.
	opTimeout = 5 * time.Second

	// apiPrefix is the JetStream API's default subject prefix (the
	// EventBus sets no JetStream domain).
	apiPrefix = "$JS.API."
)

// JetStream API error codes. "Wrong last sequence" is the server's answer
// to a lost compare-and-swap: 10071 everywhere, and 10164 instead on
// replicated streams of server 2.11 and later when another proposal for
// the subject is in flight. nats.go v1.55 maps both to ErrKeyExists or
// ErrKeyRevisionMismatch on most paths, but not all (Create's retry over a
// delete marker returns the raw API error), so isConflict checks the codes
// as well.
const (
	errCodeWrongLastSeq         = 10071
	errCodeWrongLastSeqConstant = 10164
	errCodeNoMessageFound       = 10037
	errCodeStreamNotFound       = 10059
)

// ErrInvalidFingerprint is returned for a fingerprint that is not 16
// lowercase hex characters. It is a caller bug, not an outage, so it does
// not wrap store.ErrUnavailable.
var ErrInvalidFingerprint = errors.New("natskv: invalid fingerprint (want 16 lowercase hex characters)")

// errNoMessage: the stream holds no message for the key.
var errNoMessage = errors.New("no message")

// bucket returns the bound bucket, or an error wrapping
// store.ErrUnavailable when the store cannot serve now.
func (s *Store) bucket() (*bucket, error) {
	b := s.kv.Load()
	switch {
	case !s.nc.IsConnected():
		return nil, fmt.Errorf("%w: not connected to nats (%s)", store.ErrUnavailable, s.nc.Status())
	case b == nil:
		return nil, fmt.Errorf("%w: bucket %s not bound yet", store.ErrUnavailable, s.cfg.Bucket)
	}
	return b, nil
}

// Get implements store.Store. The record comes from the stream leader, so
// it is the latest one acknowledged (see the package comment).
func (s *Store) Get(ctx context.Context, fingerprint string) (store.Record, bool, error) {
	if err := checkFingerprint(fingerprint); err != nil {
		return store.Record{}, false, err
	}
	b, err := s.bucket()
	if err != nil {
		return store.Record{}, false, fmt.Errorf("natskv: get record %s: %w", fingerprint, err)
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	m, err := s.last(ctx, b, recPrefix+fingerprint)
	if errors.Is(err, errNoMessage) || err == nil && m.deleted {
		return store.Record{}, false, nil
	}
	if err != nil {
		return store.Record{}, false, fmt.Errorf("natskv: get record %s: %w", fingerprint, unavailable(ctx, "read", err))
	}
	var r store.Record
	if err := json.Unmarshal(m.data, &r); err != nil {
		// Not ErrUnavailable: retrying will not fix it. The caller must
		// not treat it as "no record" either, or it would open a duplicate.
		return store.Record{}, false, fmt.Errorf("natskv: decode record %s (revision %d): %w", fingerprint, m.seq, err)
	}
	if r.Fingerprint == "" {
		r.Fingerprint = fingerprint
	}
	r.Revision = m.seq
	return r, true, nil
}

// Put implements store.Store. It sets CreatedAt when r has none (a first
// save, or a record started afresh) and UpdatedAt always, and writes only
// over r.Revision: a create when it is 0 (over nothing or over a delete
// marker), else an update expecting that revision. A pending record is
// entered in the pending index first; a finished one is taken out of it
// afterwards, best effort (a stale entry costs the drainer one read).
func (s *Store) Put(ctx context.Context, r store.Record) (store.Record, error) {
	if err := checkFingerprint(r.Fingerprint); err != nil {
		return store.Record{}, err
	}
	b, err := s.bucket()
	if err != nil {
		return store.Record{}, fmt.Errorf("natskv: put record %s: %w", r.Fingerprint, err)
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
		// Before the record, so that the index never misses it; at a
		// revision above the one read, which is what keeps a finisher
		// racing with us from taking it out (see clearPending).
		since, _ := r.Pending.Since.MarshalText()
		if _, err := b.kv.Put(ctx, pendPrefix+r.Fingerprint, since); err != nil {
			return store.Record{}, fmt.Errorf("natskv: index pending record %s: %w", r.Fingerprint, unavailable(ctx, "write", err))
		}
	}
	var rev uint64
	if r.Revision == 0 {
		rev, err = s.create(ctx, b, recPrefix+r.Fingerprint, val)
	} else {
		rev, err = b.kv.Update(ctx, recPrefix+r.Fingerprint, val, r.Revision)
	}
	if isConflict(err) {
		return store.Record{}, fmt.Errorf("natskv: put record %s at revision %d: %w", r.Fingerprint, r.Revision, store.ErrConflict)
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("natskv: put record %s: %w", r.Fingerprint, unavailable(ctx, "write", err))
	}
	r.Revision = rev
	if r.Pending == nil {
		if err := s.clearPending(ctx, b, r.Fingerprint, rev); err != nil {
			s.log.Warn("pending index not cleared; the drainer will skip it", "fingerprint", r.Fingerprint, "err", err)
		}
	}
	return r, nil
}

// clearPending takes fingerprint out of the pending index after its record
// was saved finished at revision rec. It removes only an index entry older
// than rec: a writer that made the record pending again after rec wrote a
// newer entry before its record, and that entry must stay. The purge
// removes the entry's message up to its revision and never a newer one, so
// it is a compare-and-swap too, and leaves no marker for Pending to skip.
func (s *Store) clearPending(ctx context.Context, b *bucket, fingerprint string, rec uint64) error {
	key := pendPrefix + fingerprint
	m, err := s.last(ctx, b, key)
	switch {
	case errors.Is(err, errNoMessage):
		return nil
	case err != nil:
		return err
	case m.seq > rec:
		return nil // pending again meanwhile
	}
	return s.purge(ctx, key, m.seq)
}

// Pending implements store.Store: the keys of the pending index, read
// from the stream leader one message at a time (the index holds pending
// records only, so this is one request per pending record).
func (s *Store) Pending(ctx context.Context) ([]string, error) {
	b, err := s.bucket()
	if err != nil {
		return nil, fmt.Errorf("natskv: list pending: %w", err)
	}
	var fps []string
	seen := map[string]bool{}
	for seq := uint64(0); ; {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("natskv: list pending: %w", unavailable(ctx, "list", err))
		}
		rctx, cancel := context.WithTimeout(ctx, opTimeout)
		m, err := s.msgGet(rctx, b, msgGetRequest{Seq: seq, NextFor: s.subj + pendPrefix + ">"})
		if errors.Is(err, errNoMessage) {
			cancel()
			return fps, nil
		}
		if err != nil {
			err = unavailable(rctx, "list", err)
			cancel()
			return nil, fmt.Errorf("natskv: list pending: %w", err)
		}
		cancel()
		// A delete marker (written by an older version of this store) is
		// no entry.
		if fp := strings.TrimPrefix(m.subject, s.subj+pendPrefix); !m.deleted && !seen[fp] {
			seen[fp] = true
			fps = append(fps, fp)
		}
		seq = m.seq + 1
	}
}

// create writes key only if it has no value: no message, or a delete
// marker, which it writes over with a compare-and-swap on the marker's
// revision. nats.go's kv.Create does the same but reads the marker with a
// direct get that a lagging replica may answer with an older one; here the
// leader answers.
func (s *Store) create(ctx context.Context, b *bucket, key string, val []byte) (uint64, error) {
	rev, err := b.kv.Update(ctx, key, val, 0)
	if err == nil || !isConflict(err) {
		return rev, err
	}
	m, gerr := s.last(ctx, b, key)
	switch {
	case gerr == nil && m.deleted:
		return b.kv.Update(ctx, key, val, m.seq)
	case gerr == nil, errors.Is(gerr, errNoMessage):
		// A live value, or one that vanished since (expired, purged): the
		// create lost either way, and the caller reads again.
		return 0, err
	}
	return 0, gerr
}

// msg is one stored message as the stream leader returned it.
type msg struct {
	subject string
	seq     uint64
	data    []byte
	deleted bool // a KV delete or purge marker: the key has no value
}

// msgGetRequest is the JetStream API's JSApiMsgGetRequest.
type msgGetRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
}

// last returns the latest message of key, or errNoMessage.
func (s *Store) last(ctx context.Context, b *bucket, key string) (msg, error) {
	return s.msgGet(ctx, b, msgGetRequest{LastFor: s.subj + key})
}

// msgGet asks the stream leader for one message: $JS.API.STREAM.MSG.GET,
// which, unlike the direct get, only the leader answers (server 2.9 and
// later, next_by_subj included). A stream the server no longer has
// unbinds the bucket, so that it is created again.
func (s *Store) msgGet(ctx context.Context, b *bucket, req msgGetRequest) (msg, error) {
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Subject string `json:"subject"`
			Seq     uint64 `json:"seq"`
			Header  []byte `json:"hdrs"`
			Data    []byte `json:"data"`
		} `json:"message"`
	}
	if err := s.api(ctx, "STREAM.MSG.GET."+s.stream, req, &resp); err != nil {
		return msg{}, err
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == errCodeNoMessageFound:
		return msg{}, errNoMessage
	case resp.Error != nil && resp.Error.ErrorCode == errCodeStreamNotFound:
		s.unbind(b)
		return msg{}, resp.Error
	case resp.Error != nil:
		return msg{}, resp.Error
	case resp.Message == nil:
		return msg{}, errors.New("message get: empty response")
	}
	m := msg{subject: resp.Message.Subject, seq: resp.Message.Seq, data: resp.Message.Data}
	if len(resp.Message.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(resp.Message.Header)
		if err != nil {
			return msg{}, fmt.Errorf("message get: headers of %s: %w", m.subject, err)
		}
		// KV-Operation is what kv.Delete and kv.Purge write;
		// Nats-Marker-Reason what a 2.11+ server writes when it removes a
		// key by its per-key TTL.
		m.deleted = h.Get("KV-Operation") != "" || h.Get("Nats-Marker-Reason") != ""
	}
	return m, nil
}

// purge removes the messages of key up to and including revision rev.
// Any message after rev stays.
func (s *Store) purge(ctx context.Context, key string, rev uint64) error {
	req := struct {
		Filter string `json:"filter"`
		Seq    uint64 `json:"seq"` // purge up to but not including
	}{s.subj + key, rev + 1}
	var resp struct {
		Error *jetstream.APIError `json:"error"`
	}
	if err := s.api(ctx, "STREAM.PURGE."+s.stream, req, &resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	return nil
}

// api makes one JetStream API request.
func (s *Store) api(ctx context.Context, subject string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	reply, err := s.nc.RequestWithContext(ctx, apiPrefix+subject, body)
	if err != nil {
		return fmt.Errorf("%s: %w", subject, err)
	}
	if err := json.Unmarshal(reply.Data, resp); err != nil {
		return fmt.Errorf("%s: decode response: %w", subject, err)
	}
	return nil
}

// isConflict reports a lost compare-and-swap: the key exists (create) or
// has moved past the expected revision (update, delete), in every form
// nats.go returns it.
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

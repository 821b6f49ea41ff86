// Package handler is the function's pipeline for one request:
// authenticate → read (size-limited) → decode → decide → open → reply.
// It is the only package that knows about the caller's HTTP request.
package handler

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"function/atlassian"
	"function/config"
	"function/inbound"
	"function/internal/clip"
	"function/opener"
)

// Recorder counts answered deliveries (metrics).
type Recorder interface {
	Event(source, outcome string, d time.Duration)
}

// Handler serves rollback events.
type Handler struct {
	cfg      config.Config
	decoder  *inbound.Decoder
	opener   *opener.Opener
	drainer  *opener.Drainer
	log      *slog.Logger
	recorder Recorder
	tokens   TokenSource
	now      func() time.Time
	// small and large bound the bytes of request bodies in memory: small
	// bodies (a known length up to smallBody) and the rest draw on
	// separate budgets, so large or slow callers cannot starve the events
	// that matter.
	small, large *semaphore.Weighted
}

// smallBody is the largest body drawn from the small budget: real Argo
// events are a few KiB; a Rollout object with status tens of KiB.
const smallBody = 64 << 10

// bodyWait is how long a request waits for room in its budget before it
// is answered 503 (nothing was read, nothing kept: the sender retries).
const bodyWait = 2 * time.Second

// TokenSource returns the bearer token callers must present: AUTH_TOKEN,
// or the auth_token of the credentials secret, which may rotate. An empty
// token means no bearer check (HMAC only, or ALLOW_UNAUTHENTICATED).
type TokenSource func(ctx context.Context) (config.Secret, error)

// New returns a handler. o takes custody of rollbacks and d works them
// off; log receives one line per request; rec counts outcomes.
func New(cfg config.Config, o *opener.Opener, d *opener.Drainer, log *slog.Logger, rec Recorder, tokens TokenSource) *Handler {
	return &Handler{
		cfg:      cfg,
		decoder:  inbound.NewDecoder(cfg.ClusterName, inbound.DefaultLimits()),
		opener:   o,
		drainer:  d,
		log:      log,
		recorder: rec,
		tokens:   tokens,
		now:      time.Now,
		small:    semaphore.NewWeighted(cfg.MaxInflightBytes),
		large:    semaphore.NewWeighted(cfg.MaxInflightBytes),
	}
}

// ServeHTTP handles one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	source, outcome := "", string(StatusRejected)
	defer func() { h.recorder.Event(source, outcome, h.now().Sub(start)) }()

	log := h.log.With("method", r.Method, "path", r.URL.Path)
	ok, err := h.bearerOK(r)
	if err != nil {
		outcome = string(StatusFailed)
		log.Error("caller token unavailable", "error", err.Error())
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, Reply{Status: StatusFailed, Reason: "credentials unavailable; retry later"})
		return
	}
	if !ok {
		h.unauthorized(w, log, "missing or wrong bearer token")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, Reply{Status: StatusRejected, Reason: "only POST is accepted: send the rollback event as the request body"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestDeadline)
	defer cancel()

	if r.ContentLength > h.cfg.MaxBodyBytes {
		writeJSON(w, http.StatusRequestEntityTooLarge, Reply{Status: StatusRejected, Reason: "body larger than " + strconv.FormatInt(h.cfg.MaxBodyBytes, 10) + " bytes"})
		return
	}
	release, ok := h.reserve(ctx, r)
	if !ok {
		log.Warn("request refused: too many request bodies in memory", "status", http.StatusServiceUnavailable, "content_length", r.ContentLength)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, Reply{Status: StatusFailed, Reason: "busy: too many request bodies in flight; nothing was kept, retry"})
		return
	}
	defer release()
	// A caller that sends its body too slowly is cut off, so that it holds
	// its share of the budget for BODY_READ_TIMEOUT at most.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.cfg.BodyReadTimeout))
	body, perr := readBody(w, r, h.cfg.MaxBodyBytes)
	if perr == nil && !h.signatureOK(r, body) {
		h.unauthorized(w, log, "missing or wrong X-Signature-256")
		return
	}
	if perr == nil && r.URL.Path == ReconcilePath {
		outcome = "reconcile"
		h.reconcile(ctx, w, log, body)
		return
	}
	var req request
	if perr == nil {
		req, perr = parseRequest(r, body)
	}
	if perr != nil {
		log.Warn("request rejected", "status", perr.status, "reason", perr.reason)
		writeJSON(w, perr.status, Reply{Status: StatusRejected, Reason: perr.reason})
		return
	}
	ctx = atlassian.WithTraceparent(ctx, req.traceparent)
	// Header values are the caller's: clipped, so a huge one cannot flood
	// the log.
	log = log.With("ce_id", clip.Text(req.meta.ID, maxLoggedHeader), "ce_type", clip.Text(req.meta.Type, maxLoggedHeader), "cloudevent", req.cloudEvent)
	if id := atlassian.TraceID(ctx); id != "" {
		log = log.With("trace_id", id)
	}

	dec, err := h.decoder.Decode(req.data, req.meta)
	release() // the decoded incident is small; the body's budget is free
	if err != nil {
		status := http.StatusBadRequest
		if !inbound.IsInputError(err) {
			status = http.StatusInternalServerError
		}
		log.Warn("event rejected", "status", status, "reason", err.Error())
		h.reply(w, req, status, Reply{Status: StatusRejected, Reason: err.Error()})
		return
	}
	source = sourceOf(dec.Shape)
	log = log.With("shape", dec.Shape)
	if dec.Incident == nil && dec.Recovery != nil {
		// Healthy again: news for the object's open incident, if any;
		// otherwise ignored, at no Atlassian call.
		ctx = opener.WithLogger(ctx, log)
		acc, found, err := h.opener.Recover(ctx, dec.Recovery)
		if err != nil {
			outcome = string(StatusFailed)
			log.Error("recovery not recorded", "error", err.Error())
			w.Header().Set("Retry-After", "5")
			h.reply(w, req, http.StatusServiceUnavailable, Reply{Status: StatusFailed, Reason: "could not record the recovery (idempotency store unavailable); nothing was kept: retry"})
			return
		}
		if found {
			log = log.With("fingerprint", acc.Fingerprint)
			ctx = opener.WithLogger(ctx, log)
			outcome = string(StatusRecovered)
			out, werr := h.finish(ctx, acc)
			rep := replyTo(out)
			rep.Status, rep.Reason = StatusRecovered, "recovery recorded on the incident of "+dec.Recovery.Kind+" "+dec.Recovery.Subject()
			status := http.StatusOK
			if !out.Done {
				status, rep.Reason = http.StatusAccepted, rep.Reason+"; "+opener.Reason(h.cfg, werr)
			}
			log.Info("recovery recorded", "jira_key", out.JiraKey, "done", out.Done)
			h.reply(w, req, status, rep)
			return
		}
	}
	if dec.Incident == nil {
		outcome = string(StatusIgnored)
		log.Info("event ignored", "reason", dec.Ignored, "duration", h.now().Sub(start))
		h.reply(w, req, http.StatusOK, Reply{Status: StatusIgnored, Reason: dec.Ignored})
		return
	}
	in := dec.Incident
	log = log.With("fingerprint", in.Fingerprint(), "subject", in.Kind+" "+in.Subject(), "revision", in.Revision)
	ctx = opener.WithLogger(ctx, log)

	// Custody first: once the rollback is recorded the function owns it,
	// whatever happens to this request or to Atlassian.
	acc, err := h.opener.Accept(ctx, in)
	if err != nil {
		outcome = string(StatusFailed)
		log.Error("rollback not taken into custody", "status", http.StatusServiceUnavailable, "error", err.Error())
		w.Header().Set("Retry-After", "5")
		h.reply(w, req, http.StatusServiceUnavailable, Reply{Status: StatusFailed, Reason: "could not record the rollback (idempotency store unavailable); nothing was kept: retry", Fingerprint: in.Fingerprint()})
		return
	}
	if acc.Fingerprint != in.Fingerprint() {
		log = log.With("joined", acc.Fingerprint) // news of an earlier incident
		ctx = opener.WithLogger(ctx, log)
	}
	h.drainer.Wake()
	out, werr := h.finish(ctx, acc)
	subject := in.Kind + " " + in.Subject()
	rep := replyTo(out)
	if !out.Done {
		outcome = string(StatusAccepted)
		rep.Status, rep.Reason = StatusAccepted, opener.Reason(h.cfg, werr)
		log.Warn("rollback accepted, not finished yet", "reason", rep.Reason, "jira_key", out.JiraKey, "page_id", out.PageID, "news", acc.News, "duration", h.now().Sub(start))
		h.reply(w, req, http.StatusAccepted, rep)
		return
	}
	rep.Status = StatusExisting
	if out.Created {
		rep.Status = StatusCreated
	}
	outcome = string(rep.Status)
	rep.Reason = replyReason(rep.Status, subject)
	log.Info("incident "+string(rep.Status), "jira_key", out.JiraKey, "page_id", out.PageID, "news", acc.News, "duration", h.now().Sub(start))
	h.reply(w, req, http.StatusOK, rep)
}

// reserve takes room for r's body from its budget (its declared length,
// or MAX_BODY_BYTES when unknown), waiting bodyWait at most. release gives
// it back and may be called more than once.
func (h *Handler) reserve(ctx context.Context, r *http.Request) (release func(), ok bool) {
	pool, n := h.large, h.cfg.MaxBodyBytes
	if r.ContentLength >= 0 && r.ContentLength <= smallBody {
		pool, n = h.small, max(r.ContentLength, 1)
	} else if r.ContentLength > 0 {
		n = r.ContentLength
	}
	wctx, cancel := context.WithTimeout(ctx, bodyWait)
	defer cancel()
	if err := pool.Acquire(wctx, n); err != nil {
		return func() {}, false
	}
	var once sync.Once
	return func() { once.Do(func() { pool.Release(n) }) }, true
}

// maxLoggedHeader caps a caller's header value in the log.
const maxLoggedHeader = 200

// errStillWorking is why a rollback whose attempt outlasted the request's
// budget is answered 202.
var errStillWorking = fmt.Errorf("the request's budget ran out: %w", opener.ErrInProgress)

// replyTo is the reply's part that says where the incident is.
func replyTo(out opener.Outcome) Reply {
	return Reply{Fingerprint: out.Fingerprint, JiraKey: out.JiraKey, JiraURL: out.JiraURL, ConfluencePageID: out.PageID, ConfluenceURL: out.PageURL}
}

// finish works the accepted rollback, unless it is done already, for at
// most FINISH_BUDGET, so that the common case answers with the incident;
// the attempt goes on in the background after that. While Atlassian is
// known to be down it does not wait at all.
func (h *Handler) finish(ctx context.Context, acc opener.Outcome) (opener.Outcome, error) {
	if acc.Done {
		return acc, nil
	}
	if until, down := h.drainer.Unavailable(); down {
		return acc, fmt.Errorf("Atlassian answered unavailable to a recent attempt; next try after %s: %w", until.UTC().Format(time.RFC3339), opener.ErrUnavailable)
	}
	a, started := h.drainer.Finish(ctx, acc.Fingerprint)
	t := time.NewTimer(h.cfg.FinishBudget)
	defer t.Stop()
	select {
	case <-a.Done():
		out, err := a.Result()
		if err == nil && !out.Done {
			err = errStillWorking
		}
		out.Created = out.Created && started
		return out, err
	case <-t.C:
	case <-ctx.Done():
	}
	return acc, errStillWorking
}

// sourceOf names the payload for metrics: the innermost part of the shape
// (e.g. "rollouts-notification", "object.Rollout"), a small fixed set.
func sourceOf(shape string) string {
	if i := strings.LastIndexByte(shape, '/'); i >= 0 {
		return shape[i+1:]
	}
	return shape
}

func replyReason(s Status, subject string) string {
	if s == StatusCreated {
		return "incident opened for " + subject
	}
	return "incident already open for " + subject
}

// bearerOK checks the bearer token in constant time. Hashing both sides
// first makes the comparison independent of the token's length too.
func (h *Handler) bearerOK(r *http.Request) (bool, error) {
	token, err := h.tokens(r.Context())
	if err != nil {
		return false, err
	}
	if token.Reveal() == "" {
		return true, nil
	}
	// The scheme is case-insensitive (RFC 7235 section 2.1).
	scheme, presented, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	want := sha256.Sum256([]byte(token.Reveal()))
	got := sha256.Sum256([]byte(strings.TrimSpace(presented)))
	return strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(got[:], want[:]) == 1, nil
}

// signatureOK checks X-Signature-256: sha256=<hex HMAC-SHA256 of the body>
// when HMAC_SECRET is set.
func (h *Handler) signatureOK(r *http.Request, body []byte) bool {
	if h.cfg.HMACSecret.Reveal() == "" {
		return true
	}
	sig, ok := strings.CutPrefix(strings.TrimSpace(r.Header.Get("X-Signature-256")), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(h.cfg.HMACSecret.Reveal()))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// unauthorized answers 401 with no detail: a caller probing tokens learns
// nothing.
func (h *Handler) unauthorized(w http.ResponseWriter, log *slog.Logger, why string) {
	log.Warn("request rejected", "status", http.StatusUnauthorized, "reason", why)
	w.Header().Set("WWW-Authenticate", `Bearer realm="rollback-incident"`)
	writeJSON(w, http.StatusUnauthorized, Reply{Status: StatusRejected, Reason: "unauthorized"})
}

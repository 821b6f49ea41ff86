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
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"function/atlassian"
	"function/config"
	"function/inbound"
	"function/secrets"
	"function/store"
)

// Recorder counts answered deliveries (metrics).
type Recorder interface {
	Event(source, outcome string, d time.Duration)
}

// Handler serves rollback events.
type Handler struct {
	cfg      config.Config
	decoder  *inbound.Decoder
	opener   *Opener
	log      *slog.Logger
	recorder Recorder
	tokens   TokenSource
	now      func() time.Time
}

// TokenSource returns the bearer token callers must present: AUTH_TOKEN,
// or the auth_token of the credentials secret, which may rotate. An empty
// token means no bearer check (HMAC only, or ALLOW_UNAUTHENTICATED).
type TokenSource func(ctx context.Context) (config.Secret, error)

// New returns a handler. opener does the Atlassian work; log receives one
// line per request; rec counts outcomes.
func New(cfg config.Config, opener *Opener, log *slog.Logger, rec Recorder, tokens TokenSource) *Handler {
	return &Handler{
		cfg:      cfg,
		decoder:  inbound.NewDecoder(cfg.ClusterName, inbound.DefaultLimits),
		opener:   opener,
		log:      log,
		recorder: rec,
		tokens:   tokens,
		now:      time.Now,
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

	body, perr := readBody(w, r, h.cfg.MaxBodyBytes)
	if perr == nil && !h.signatureOK(r, body) {
		h.unauthorized(w, log, "missing or wrong X-Signature-256")
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
	log = log.With("ce_id", req.meta.ID, "ce_type", req.meta.Type, "cloudevent", req.cloudEvent)
	if id := atlassian.TraceID(ctx); id != "" {
		log = log.With("trace_id", id)
	}

	dec, err := h.decoder.Decode(req.data, req.meta)
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
	if dec.Incident == nil {
		outcome = string(StatusIgnored)
		log.Info("event ignored", "reason", dec.Ignored, "duration", h.now().Sub(start))
		h.reply(w, req, http.StatusOK, Reply{Status: StatusIgnored, Reason: dec.Ignored})
		return
	}
	in := dec.Incident
	log = log.With("fingerprint", in.Fingerprint(), "subject", in.Kind+" "+in.Subject(), "revision", in.Revision)

	out, err := h.opener.Open(withLogger(ctx, log), in)
	if err != nil {
		outcome = string(StatusFailed)
		status, retry, reason := classify(ctx, err)
		if retry > 0 {
			w.Header().Set("Retry-After", retryAfterHeader(retry))
		}
		log.Error("incident not opened", "status", status, "error", err.Error(), "jira_key", out.JiraKey, "page_id", out.PageID)
		h.reply(w, req, status, Reply{Status: StatusFailed, Reason: reason, Fingerprint: in.Fingerprint(), JiraKey: out.JiraKey, JiraURL: out.JiraURL})
		return
	}
	outcome = string(out.Status)
	log.Info("incident "+string(out.Status), "jira_key", out.JiraKey, "page_id", out.PageID, "news", out.News, "duration", h.now().Sub(start))
	h.reply(w, req, http.StatusOK, Reply{
		Status: out.Status, Reason: replyReason(out.Status, in.Kind+" "+in.Subject()), Fingerprint: in.Fingerprint(),
		JiraKey: out.JiraKey, JiraURL: out.JiraURL, ConfluencePageID: out.PageID, ConfluenceURL: out.PageURL,
	})
}

// sourceOf names the payload for metrics: the innermost part of the shape
// (e.g. "rollouts-notification", "object.Rollout"), a small fixed set.
func sourceOf(shape string) string {
	if i := strings.LastIndexByte(shape, '/'); i >= 0 {
		return shape[i+1:]
	}
	return shape
}

type logKey struct{}

// withLogger passes the request's logger, which carries the event's ids,
// down to the opening steps, so that every line about an event has them.
func withLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, logKey{}, log)
}

func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(logKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
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
	want := sha256.Sum256([]byte("Bearer " + token.Reveal()))
	got := sha256.Sum256([]byte(strings.TrimSpace(r.Header.Get("Authorization"))))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1, nil
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

// classify maps an opening error to the caller's status: a transient
// Atlassian failure or our own deadline is 503 with Retry-After, so the
// sender retries and the idempotent steps finish the work; Atlassian
// refusing the request is 502, also retried, since it is no fault of the
// event and an operator may fix the configuration meanwhile.
func classify(ctx context.Context, err error) (status int, retry time.Duration, reason string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return http.StatusServiceUnavailable, 5 * time.Second, "deadline exceeded before the incident was complete; retry to finish it"
	case errors.Is(err, secrets.ErrUnavailable):
		return http.StatusServiceUnavailable, 5 * time.Second, "Atlassian credentials unavailable; retry later"
	case errors.Is(err, secrets.ErrMisconfigured):
		return http.StatusBadGateway, time.Minute, "Atlassian credentials misconfigured; an operator must fix the secret or its IAM policy"
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable, 5 * time.Second, "idempotency store unavailable; retry later"
	case errors.Is(err, errIndexing):
		return http.StatusServiceUnavailable, retryDelay(err), err.Error()
	case isTemporary(err):
		return http.StatusServiceUnavailable, retryDelay(err), "Atlassian is unavailable: " + err.Error()
	case isAtlassian(err):
		return http.StatusBadGateway, time.Minute, "Atlassian refused the request: " + err.Error()
	default:
		return http.StatusInternalServerError, 5 * time.Second, "internal error"
	}
}

func retryAfterHeader(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	return itoa(max(s, 1))
}

// Package handler is the function's pipeline for one request:
// authenticate → read (size-limited) → decode → decide → open → reply.
// It is the only package that knows about the caller's HTTP request.
package handler

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"function/atlassian"
	"function/config"
	"function/inbound"
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
	now      func() time.Time
	// authDigest is sha256 of the expected Authorization header, compared
	// in constant time; nil when authentication is off.
	authDigest []byte
}

// New returns a handler. opener does the Atlassian work; log receives one
// line per request; rec counts outcomes.
func New(cfg config.Config, opener *Opener, log *slog.Logger, rec Recorder) *Handler {
	h := &Handler{
		cfg:      cfg,
		decoder:  inbound.NewDecoder(cfg.ClusterName, inbound.DefaultLimits),
		opener:   opener,
		log:      log,
		recorder: rec,
		now:      time.Now,
	}
	if cfg.AuthToken.Reveal() != "" {
		d := sha256.Sum256([]byte("Bearer " + cfg.AuthToken.Reveal()))
		h.authDigest = d[:]
	}
	return h
}

// ServeHTTP handles one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	source, outcome := "", string(StatusRejected)
	defer func() { h.recorder.Event(source, outcome, h.now().Sub(start)) }()

	log := h.log.With("method", r.Method, "path", r.URL.Path)
	if !h.authorized(r) {
		// No detail: a caller probing tokens learns nothing.
		log.Warn("request rejected", "status", http.StatusUnauthorized, "reason", "missing or wrong bearer token")
		w.Header().Set("WWW-Authenticate", `Bearer realm="rollback-incident"`)
		writeJSON(w, http.StatusUnauthorized, Reply{Status: StatusRejected, Reason: "unauthorized"})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, Reply{Status: StatusRejected, Reason: "only POST is accepted: send the rollback event as the request body"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestDeadline)
	defer cancel()

	req, perr := readRequest(w, r, h.cfg.MaxBodyBytes)
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

// authorized checks the bearer token in constant time. Hashing both sides
// first makes the comparison independent of the token's length too.
func (h *Handler) authorized(r *http.Request) bool {
	if h.authDigest == nil {
		return true
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(r.Header.Get("Authorization"))))
	return subtle.ConstantTimeCompare(got[:], h.authDigest) == 1
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

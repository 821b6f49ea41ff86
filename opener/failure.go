package opener

import (
	"context"
	"errors"
	"net/http"
	"time"

	"function/atlassian"
	"function/config"
	"function/confluence"
	"function/secrets"
	"function/store"
)

// Failure is the kind of a failed attempt; it decides when to try again.
type Failure int

// Kinds of failure.
const (
	// FailUnavailable: Atlassian unreachable, 5xx, 429, the credentials
	// source unreachable, or the attempt's deadline. Retried in seconds,
	// never sooner than Retry-After.
	FailUnavailable Failure = iota
	// FailIndexing: an interrupted create may have made the issue and
	// Jira's search does not show it yet. Search again, never create,
	// until JIRA_INDEX_GRACE has passed.
	FailIndexing
	// FailRefused: Atlassian refused the request (401, 403, 400, a missing
	// space) or the credentials are misconfigured. Retried slowly, so that
	// fixing the configuration drains the backlog.
	FailRefused
	// FailStore: the idempotency store failed; nothing can be recorded.
	FailStore
	// FailBusy: someone else holds the rollback's lock. Not a failure.
	FailBusy
	// FailInternal: anything else (a bug). Retried slowly.
	FailInternal
)

func (f Failure) String() string {
	switch f {
	case FailUnavailable:
		return "unavailable"
	case FailIndexing:
		return "indexing"
	case FailRefused:
		return "refused"
	case FailStore:
		return "store"
	case FailBusy:
		return "busy"
	default:
		return "internal"
	}
}

// ErrInProgress says the work was still going when the caller stopped
// waiting: it goes on.
var ErrInProgress = errors.New("still being worked on")

// ErrUnavailable says Atlassian is known to be unavailable right now.
var ErrUnavailable = errors.New("Atlassian unavailable")

// Classify tells what kind of failure err is.
func Classify(err error) Failure {
	switch {
	case errors.Is(err, ErrBusy), errors.Is(err, ErrInProgress):
		return FailBusy
	case errors.Is(err, errIndexing):
		return FailIndexing
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, store.ErrConflict):
		return FailStore
	case errors.Is(err, secrets.ErrMisconfigured), errors.Is(err, confluence.ErrSpaceNotFound):
		return FailRefused
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, secrets.ErrUnavailable), errors.Is(err, ErrUnavailable), atlassian.IsTemporary(err):
		return FailUnavailable
	}
	if _, ok := atlassian.AsError(err); ok {
		return FailRefused
	}
	return FailInternal
}

// Backoff bounds.
const (
	unavailableFirst = 2 * time.Second
	unavailableMax   = time.Minute
	refusedFirst     = time.Minute
	refusedMax       = 15 * time.Minute
	indexingEvery    = 5 * time.Second
)

// NextAttempt is when to try again after a failure of kind f, the attempts
// failures in a row (this one included), the wait the answer asked for,
// and for an interrupted create, when it began and the index grace.
func NextAttempt(f Failure, attempts int, now time.Time, retryAfter time.Duration, creatingSince time.Time, grace time.Duration) time.Time {
	exp := func(first, most time.Duration) time.Duration {
		d := first
		for i := 1; i < attempts && d < most; i++ {
			d *= 2
		}
		return min(d, most)
	}
	switch f {
	case FailBusy:
		return now // the holder finishes it or records its own failure
	case FailRefused, FailInternal:
		return now.Add(max(exp(refusedFirst, refusedMax), retryAfter))
	case FailIndexing:
		// Search again every few seconds (one cheap call): the issue
		// shows up as soon as Jira has indexed it; at the end of the grace
		// a create is allowed.
		next := now.Add(indexingEvery)
		if end := creatingSince.Add(grace); !creatingSince.IsZero() && end.Before(next) && end.After(now) {
			next = end
		}
		return next
	default:
		return now.Add(max(exp(unavailableFirst, unavailableMax), retryAfter))
	}
}

// RetryAfter is the wait an Atlassian answer asked for, if any.
func RetryAfter(err error) time.Duration {
	if ae, ok := atlassian.AsError(err); ok {
		return ae.RetryAfter
	}
	return 0
}

// Reason says, for the caller and the log, why a rollback is not finished
// yet and what happens next. A credential refusal names the variable or
// secret at fault, never its value.
func Reason(cfg config.Config, err error) string {
	switch Classify(err) {
	case FailIndexing:
		return "an earlier attempt may have created the Jira issue; waiting for Jira's search index, the function will finish it"
	case FailBusy:
		return "being worked on (" + err.Error() + "); the function will finish it"
	case FailUnavailable:
		return "Atlassian is unavailable (" + err.Error() + "); the function will finish it when Atlassian answers"
	case FailRefused:
		if ae, ok := atlassian.AsError(err); ok && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
			return "Atlassian refused the credentials (" + http.StatusText(ae.Status) + "): check " + CredentialSource(cfg) + "; the function keeps the rollback and retries"
		}
		return "Atlassian refused the request (" + err.Error() + "); the function keeps the rollback and retries while an operator fixes the configuration"
	default:
		return "not finished yet (" + err.Error() + "); the function keeps the rollback and retries"
	}
}

// CredentialSource names where the Atlassian credentials come from: the
// variables or the secret an operator must check.
func CredentialSource(cfg config.Config) string {
	switch {
	case cfg.AtlassianSecretID != "":
		return "the AWS Secrets Manager secret ATLASSIAN_SECRET_ID=" + cfg.AtlassianSecretID
	case cfg.AtlassianBearer != "":
		return "ATLASSIAN_BEARER_TOKEN"
	default:
		return "ATLASSIAN_EMAIL and ATLASSIAN_API_TOKEN"
	}
}

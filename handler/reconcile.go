package handler

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"function/internal/clip"
	"function/opener"
)

// ReconcilePath is the path of the reconcile request: the periodic wake-up
// that lets a function scaled to zero finish the rollbacks it holds.
const ReconcilePath = "/reconcile"

// ReconcileReply is the answer to a reconcile request.
type ReconcileReply struct {
	Status string `json:"status"` // "reconciled", or "failed" with a reason
	Reason string `json:"reason,omitempty"`
	opener.Counts
	Replayed int `json:"replayed,omitempty"`
}

// reconcile works off every pending rollback that is due, within the
// request's deadline, and answers with counts. Any body is accepted (a
// calendar event from an Argo Events Sensor, a CronJob's empty POST);
// {"replay": ["<fingerprint>", …]} first takes abandoned rollbacks back
// into custody.
func (h *Handler) reconcile(ctx context.Context, w http.ResponseWriter, log *slog.Logger, body []byte) {
	var ask struct {
		Replay []string `json:"replay"`
	}
	_ = json.Unmarshal(body, &ask) // not a replay request: just drain
	rep := ReconcileReply{Status: "reconciled"}
	for _, fp := range ask.Replay {
		revived, err := h.opener.Revive(ctx, fp)
		if err != nil {
			log.Error("replay failed", "fingerprint", clip.Text(fp, 64), "error", err.Error())
			w.Header().Set("Retry-After", "5")
			writeJSON(w, http.StatusServiceUnavailable, ReconcileReply{Status: "failed", Reason: "idempotency store unavailable; retry"})
			return
		}
		if revived {
			rep.Replayed++
		}
	}
	c, err := h.drainer.Pass(ctx, false)
	rep.Counts = c
	if err != nil {
		log.Error("reconcile failed", "error", err.Error())
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusServiceUnavailable, ReconcileReply{Status: "failed", Reason: "idempotency store unavailable; retry", Counts: c})
		return
	}
	log.Info("reconciled", "finished", c.Finished, "failed", c.Failed, "abandoned", c.Abandoned, "pending", c.Pending, "replayed", rep.Replayed)
	writeJSON(w, http.StatusOK, rep)
}

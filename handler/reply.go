package handler

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
)

// Status is the outcome the reply reports.
type Status string

// Outcomes.
const (
	StatusCreated   Status = "created"   // this delivery opened the incident
	StatusExisting  Status = "existing"  // the incident was already open
	StatusAccepted  Status = "accepted"  // in custody, not finished yet (202): the function will finish it
	StatusRecovered Status = "recovered" // the object is healthy again: recorded on its incident
	StatusIgnored   Status = "ignored"   // the event is not a failure
	StatusRejected  Status = "rejected"  // bad input (4xx)
	StatusFailed    Status = "failed"    // nothing kept (5xx): retry
)

// Reply is the JSON the caller receives, as the body of a plain reply or as
// the data of a CloudEvent reply.
type Reply struct {
	Status           Status `json:"status"`
	Reason           string `json:"reason,omitempty"`
	Fingerprint      string `json:"fingerprint,omitempty"`
	JiraKey          string `json:"jiraKey,omitempty"`
	JiraURL          string `json:"jiraUrl,omitempty"`
	ConfluencePageID string `json:"confluencePageId,omitempty"`
	ConfluenceURL    string `json:"confluenceUrl,omitempty"`
}

// ReplyEventType is the CloudEvent type of replies to CloudEvents.
const ReplyEventType = "dev.rollback-incident.result"

// ReplyEventSource is the CloudEvent source of replies.
const ReplyEventSource = "rollback-incident"

// reply answers a CloudEvent with a CloudEvent when it succeeded, and
// everything else with plain JSON: an error reply is for the sender's logs,
// and a non-2xx status already tells the Sensor to retry.
func (h *Handler) reply(w http.ResponseWriter, req request, status int, rep Reply) {
	if !req.cloudEvent || status < 200 || status > 299 {
		writeJSON(w, status, rep)
		return
	}
	ev := event.New()
	ev.SetID(uuid.NewString())
	ev.SetSource(ReplyEventSource)
	ev.SetType(ReplyEventType)
	ev.SetTime(h.now())
	if rep.Fingerprint != "" {
		ev.SetSubject(rep.Fingerprint)
	}
	if err := ev.SetData(event.ApplicationJSON, rep); err != nil {
		writeJSON(w, status, rep)
		return
	}
	if err := cehttp.WriteResponseWriter(context.Background(), binding.ToMessage(&ev), status, w); err != nil {
		h.log.Error("writing CloudEvent reply failed", "error", err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"status":"failed","reason":"internal error"}` + "\n"))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

package handler

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"function/inbound"
	"function/internal/clip"
)

// request is a read and classified delivery.
type request struct {
	data       []byte // the event data (CloudEvent data, or the plain body)
	meta       inbound.Meta
	cloudEvent bool // reply with a CloudEvent
	// traceparent is the W3C trace context: the HTTP header, or the
	// CloudEvents distributed-tracing extension.
	traceparent string
}

type requestError struct {
	status int
	reason string
}

func reject(status int, format string, args ...any) *requestError {
	return &requestError{status: status, reason: fmt.Sprintf(format, args...)}
}

// readBody reads at most maxBytes of body.
func readBody(w http.ResponseWriter, r *http.Request, maxBytes int64) ([]byte, *requestError) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, reject(http.StatusRequestEntityTooLarge, "body larger than %d bytes", maxBytes)
		}
		return nil, reject(http.StatusBadRequest, "reading body failed: %v", err)
	}
	return body, nil
}

// parseRequest decodes a CloudEvent in binary or structured mode with the
// CloudEvents SDK, or takes the body as plain JSON. The Argo Events Sensor
// sends no Content-Type at all, and the notifications webhooks send
// application/json without ce-* headers; both are plain requests.
func parseRequest(r *http.Request, body []byte) (request, *requestError) {
	mediaType := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return request{}, reject(http.StatusUnsupportedMediaType, "malformed Content-Type")
		}
		mediaType = strings.ToLower(mt)
	}
	binary := r.Header.Get("Ce-Specversion") != ""
	switch {
	case mediaType == "application/cloudevents-batch+json":
		return request{}, reject(http.StatusUnsupportedMediaType, "batched CloudEvents are not supported: send one event per request")
	case binary || mediaType == "application/cloudevents+json":
		return readCloudEvent(r, body)
	case mediaType == "" || inbound.JSONMediaType(mediaType):
		return request{data: body, traceparent: r.Header.Get("Traceparent")}, nil
	default:
		return request{}, reject(http.StatusUnsupportedMediaType,
			"unsupported Content-Type %q: send JSON (Content-Type: application/json) or a CloudEvent", clip.Text(mediaType, 60))
	}
}

// readCloudEvent reads a binary-mode CloudEvent with the SDK's HTTP binding,
// and a structured one as the decoder reads one posted as plain JSON.
func readCloudEvent(r *http.Request, body []byte) (request, *requestError) {
	var ev event.Event
	var err error
	if r.Header.Get("Ce-Specversion") != "" {
		ev, err = binaryCloudEvent(r, body)
	} else {
		ev, err = inbound.ParseCloudEvent(body)
	}
	if err != nil {
		return request{}, reject(http.StatusBadRequest, "%s", err.Error())
	}
	if dct := ev.DataContentType(); dct != "" {
		mt, _, err := mime.ParseMediaType(dct)
		if err != nil || !inbound.JSONMediaType(mt) {
			return request{}, reject(http.StatusUnsupportedMediaType, "CloudEvent datacontenttype %q is not JSON", clip.Text(dct, 60))
		}
	}
	tp, _ := ev.Extensions()["traceparent"].(string)
	return request{
		data:        ev.Data(),
		cloudEvent:  true,
		traceparent: cmp.Or(tp, r.Header.Get("Traceparent")),
		meta: inbound.Meta{
			ID: ev.ID(), Source: ev.Source(), Type: ev.Type(), Subject: ev.Subject(), Time: ev.Time(),
		},
	}, nil
}

func binaryCloudEvent(r *http.Request, body []byte) (event.Event, error) {
	cr := r.Clone(r.Context())
	cr.Body = io.NopCloser(bytes.NewReader(body))
	cr.ContentLength = int64(len(body))
	ev, err := cehttp.NewEventFromHTTPRequest(cr)
	if err == nil {
		err = ev.Validate()
	}
	if err != nil {
		return event.Event{}, fmt.Errorf("invalid CloudEvent: %s", clip.Text(strings.TrimSpace(err.Error()), 200))
	}
	return *ev, nil
}

package handler

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// parseRequest tells plain JSON from binary and structured CloudEvents and
// hands the decoder the event's data and attributes, whatever way of
// sending JSON the caller chose.
func TestParseRequest(t *testing.T) {
	const data = `{"rolloutName":"a","namespace":"b","phase":"Degraded"}`
	structured := func(dct string) string {
		return `{"specversion":"1.0","id":"e1","source":"s","type":"t","datacontenttype":"` + dct + `","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":` + data + `}`
	}
	binary := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "e1", "Ce-Source": "s", "Ce-Type": "t"}
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for hk, hv := range h {
			out[hk] = hv
		}
		return out
	}
	tests := []struct {
		name       string
		body       string
		headers    map[string]string
		cloudEvent bool
		status     int    // 0: accepted
		reason     string // part of the rejection
	}{
		{name: "sensor, no Content-Type", body: data},
		{name: "notification webhook", body: data, headers: map[string]string{"Content-Type": "application/json"}},
		{name: "JSON with charset", body: data, headers: map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{name: "+json media type", body: data, headers: map[string]string{"Content-Type": "application/vnd.argo+json"}},
		{name: "binary", body: data, headers: with(binary, "Content-Type", "application/json"), cloudEvent: true},
		{name: "binary without Content-Type", body: data, headers: binary, cloudEvent: true},
		{name: "structured", body: structured("application/json"), headers: map[string]string{"Content-Type": "application/cloudevents+json"}, cloudEvent: true},
		{name: "structured, charset", body: structured("application/json; charset=utf-8"), headers: map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"}, cloudEvent: true},
		// The JSON event format: data of any +json media type is a JSON
		// value. The SDK (v2.16.2) alone reads it as a string and fails.
		{name: "structured, +json data", body: structured("application/vnd.argo.rollout+json"), headers: map[string]string{"Content-Type": "application/cloudevents+json"}, cloudEvent: true},
		{name: "structured, +json data with parameters", body: structured("Application/Problem+JSON; charset=utf-8"), headers: map[string]string{"Content-Type": "application/cloudevents+json"}, cloudEvent: true},
		{name: "structured, xml data", body: `{"specversion":"1.0","id":"e1","source":"s","type":"t","datacontenttype":"application/xml","data":"<x/>"}`, headers: map[string]string{"Content-Type": "application/cloudevents+json"}, status: 415, reason: "not JSON"},
		{name: "structured without id", body: `{"specversion":"1.0","source":"s","type":"t","datacontenttype":"application/vnd.x+json","data":{}}`, headers: map[string]string{"Content-Type": "application/cloudevents+json"}, status: 400, reason: "invalid CloudEvent: id"},
		{name: "structured, not JSON", body: `{"specversion":`, headers: map[string]string{"Content-Type": "application/cloudevents+json"}, status: 400, reason: "invalid CloudEvent"},
		{name: "structured, data_base64 a number", body: `{"specversion":"1.0","id":"e1","source":"s","type":"t","data_base64":1}`, headers: map[string]string{"Content-Type": "application/cloudevents+json"}, status: 400, reason: "data_base64 is not a string"},
		{name: "binary without id", body: data, headers: map[string]string{"Ce-Specversion": "1.0", "Ce-Source": "s", "Ce-Type": "t"}, status: 400, reason: "invalid CloudEvent"},
		{name: "batch", body: `[]`, headers: map[string]string{"Content-Type": "application/cloudevents-batch+json"}, status: 415, reason: "one event per request"},
		{name: "text", body: data, headers: map[string]string{"Content-Type": "text/plain"}, status: 415, reason: "unsupported Content-Type"},
		{name: "malformed Content-Type", body: data, headers: map[string]string{"Content-Type": "application/json; ="}, status: 415, reason: "malformed Content-Type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			req, rerr := parseRequest(r, []byte(tc.body))
			if tc.status != 0 {
				if rerr == nil || rerr.status != tc.status || !strings.Contains(rerr.reason, tc.reason) {
					t.Fatalf("got %+v, want %d with %q", rerr, tc.status, tc.reason)
				}
				return
			}
			if rerr != nil {
				t.Fatalf("rejected: %d %s", rerr.status, rerr.reason)
			}
			if string(req.data) != data {
				t.Errorf("data %s, want %s", req.data, data)
			}
			if req.cloudEvent != tc.cloudEvent {
				t.Errorf("cloudEvent %v, want %v", req.cloudEvent, tc.cloudEvent)
			}
			if tc.cloudEvent && (req.meta.ID != "e1" || req.meta.Source != "s" || req.meta.Type != "t") {
				t.Errorf("attributes %+v, want id e1, source s, type t", req.meta)
			}
			if strings.HasPrefix(tc.body, `{"specversion"`) && !strings.HasPrefix(req.traceparent, "00-0af7651916cd43dd8448eb211c80319c-") {
				t.Errorf("traceparent %q, want the event's distributed-tracing extension", req.traceparent)
			}
		})
	}
}

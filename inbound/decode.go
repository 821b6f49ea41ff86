// Package inbound turns the bytes of one delivery into a decision: an
// incident to open, or a reason to ignore it. It knows every envelope a real
// deployment sends (Argo Events webhook and resource EventSource data, the
// Sensor's @this and whole-event wrappers, structured CloudEvents posted as
// plain JSON) and every source (Argo Rollouts and Argo CD notification bodies,
// Rollout, AnalysisRun, Application and Workflow objects). It is the only
// place where event formats are interpreted.
package inbound

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"function/incident"
	"function/internal/clip"
)

// Meta is what the transport knew about the delivery, e.g. the CloudEvent
// attributes. All of it is optional.
type Meta struct {
	ID      string
	Source  string
	Type    string
	Subject string
	Time    time.Time
}

// Decision is the outcome of decoding one delivery: exactly one of Incident
// and Ignored is set.
type Decision struct {
	Incident *incident.Incident
	// Ignored says why the event is not a failure (a healthy Rollout, a
	// DELETE, a successful sync).
	Ignored string
	// Recovery accompanies Ignored when the event says the object is
	// healthy again (a Rollout Healthy, an Argo CD Application Healthy and
	// Synced, a Workflow Succeeded). It ends the object's open incident, if
	// there is one (see incident.Recovery.Ends); without one, the event
	// stays ignored.
	Recovery *incident.Recovery
	// Shape names the envelopes and the source recognised, outermost first,
	// e.g. "sensor-context/argo-events-webhook/rollouts-notification".
	Shape string

	// joins is the earlier incident (kind, namespace, name, revision) that
	// Incident belongs to when it exists; its fingerprint becomes
	// Incident.Joins once the cluster is known.
	joins *incident.Incident
}

// Error is an input problem the caller must fix: the reply is a 4xx carrying
// Reason, which never contains more than a short quote of the input.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

func inputErrorf(format string, args ...any) error {
	return &Error{Reason: fmt.Sprintf(format, args...)}
}

// IsInputError reports whether err is an input problem (a 4xx).
func IsInputError(err error) bool {
	var ie *Error
	return errors.As(err, &ie)
}

// Limits bound what a delivery may contain, so that hostile input costs
// little and cannot reach Atlassian in bulk.
type Limits struct {
	MaxDepth        int // nesting of JSON objects and arrays
	MaxStringLength int // longest single string, in bytes
}

// DefaultLimits are generous for real Argo objects (a Rollout with
// managedFields nests about 12 deep) and small enough to stop abuse. A
// function, not a variable, so that no caller can change another's.
func DefaultLimits() Limits { return Limits{MaxDepth: 64, MaxStringLength: 256 << 10} }

// Decoder decodes deliveries. The zero value is not usable; call NewDecoder.
type Decoder struct {
	cluster string
	limits  Limits
}

// NewDecoder returns a decoder that stamps incidents with cluster.
func NewDecoder(cluster string, limits Limits) *Decoder {
	if limits.MaxDepth <= 0 {
		limits.MaxDepth = DefaultLimits().MaxDepth
	}
	if limits.MaxStringLength <= 0 {
		limits.MaxStringLength = DefaultLimits().MaxStringLength
	}
	return &Decoder{cluster: cluster, limits: limits}
}

// maxEnvelopes bounds unwrapping: the deepest real nesting is a Sensor
// whole-event string holding a webhook wrapper holding a body (3).
const maxEnvelopes = 6

// Decode interprets data, the body of a plain request or the data of a
// CloudEvent.
func (d *Decoder) Decode(data []byte, meta Meta) (Decision, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return Decision{}, inputErrorf("empty body: expected a JSON object describing a rollback")
	}
	if err := checkJSON(data, d.limits); err != nil {
		return Decision{}, err
	}
	var shape []string
	var res resource
	for range maxEnvelopes {
		obj, err := object(data)
		if err != nil {
			return Decision{}, err
		}
		var srcErr error
		if src, ok := detectSource(obj); ok {
			dec, err := src.decide(data, obj, res)
			if err == nil {
				shape = append(shape, cmp.Or(dec.Shape, src.name()))
				dec.Shape = strings.Join(shape, "/")
				if dec.Incident != nil {
					d.finish(dec.Incident, meta)
					if dec.joins != nil {
						// Cleaned like the incident it names was.
						j := *dec.joins
						j.Cluster = d.cluster
						j.Revision = clip.Text(cleanString(j.Revision), maxShort)
						dec.Incident.Joins = j.Fingerprint()
					}
				}
				if dec.Recovery != nil {
					d.finishRecovery(dec.Recovery, meta)
				}
				return dec, nil
			}
			// A Sensor payload may copy a few fields next to the full body
			// ({"rolloutName": …, "body": {…}}): when the top level does
			// not make a complete event, the wrapped one may.
			srcErr = err
		}
		env, inner, err := unwrap(data, obj)
		if srcErr != nil && (err != nil || env == "") {
			return Decision{}, srcErr
		}
		if err != nil {
			return Decision{}, err
		}
		if _, ok := obj["message"]; env == "" && ok && len(obj) == 1 {
			// func invoke's default data ({"message":"Hello World"}): func
			// shows a newcomer nothing of an error reply, so say it in a 2xx.
			return Decision{Shape: "func-invoke-default", Ignored: "this is func invoke's default test data, not a rollback event: send one, e.g. func invoke --file testdata/fixtures/rollout-notification-webhook.json"}, nil
		}
		if env == "" {
			return Decision{}, inputErrorf("unrecognised event: expected an Argo Rollouts or Argo CD notification, an Argo Events webhook or resource event, or a Rollout, AnalysisRun, Application, Workflow or ReplicaSet object (top-level keys: %s)", keyList(obj))
		}
		shape = append(shape, env)
		if t := inner.eventType; t != "" {
			res = resource{event: t, oldBody: inner.oldBody}
		}
		if inner.meta != nil && meta.ID == "" {
			meta = *inner.meta
		}
		data = inner.data
		if inner.decoded {
			if err := checkJSON(data, d.limits); err != nil {
				return Decision{}, err
			}
		}
	}
	return Decision{}, inputErrorf("event nested in more than %d envelopes", maxEnvelopes)
}

// finish sets what every source shares and cleans every string.
func (d *Decoder) finish(in *incident.Incident, meta Meta) {
	in.Cluster = d.cluster
	in.EventID = meta.ID
	if in.Time.IsZero() && !meta.Time.IsZero() {
		in.Time = meta.Time.UTC()
	}
	sanitize(in)
}

// finishRecovery does for a recovery what finish does for an incident.
func (d *Decoder) finishRecovery(r *incident.Recovery, meta Meta) {
	r.Cluster = d.cluster
	if r.At.IsZero() && !meta.Time.IsZero() {
		r.At = meta.Time.UTC()
	}
	sanitizeRecovery(r)
}

// envelope content after one unwrap.
type unwrapped struct {
	data []byte
	// decoded says data was read out of a string (base64, or JSON as
	// text): the pass over the body never saw it as JSON.
	decoded   bool
	eventType string          // ADD, UPDATE, DELETE for resource events
	oldBody   json.RawMessage // the object before an UPDATE; nil otherwise
	meta      *Meta
}

// resource is what a resource watch said besides the object itself: the
// event type ("" when the object did not come from a watch) and, for an
// UPDATE, the object before the change. A rollback shows only as the
// difference between the two.
type resource struct {
	event   string
	oldBody json.RawMessage
}

// nonNull returns raw unless it is absent or JSON null (what the resource
// EventSource sends as oldBody of an ADD or DELETE).
func nonNull(raw json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	return raw
}

// unwrap peels one known envelope off obj, decoded from data. It returns ""
// when obj is no envelope it knows.
func unwrap(data []byte, obj map[string]json.RawMessage) (string, unwrapped, error) {
	// Argo Events resource EventSource data: {type, body, oldBody, group, version, resource}.
	if t, ok := str(obj, "type"); ok && has(obj, "body") && isResourceEventType(t) {
		return "argo-events-resource", unwrapped{data: obj["body"], eventType: t, oldBody: nonNull(obj["oldBody"])}, nil
	}
	// A Sensor payload built from the resource event: {eventType, rollout|body|object}.
	if t, ok := str(obj, "eventType"); ok && isResourceEventType(t) {
		for _, k := range []string{"body", "object", "rollout", "application", "workflow", "analysisRun"} {
			if isObject(obj[k]) {
				return "sensor-resource-payload", unwrapped{data: obj[k], eventType: t, oldBody: nonNull(obj["oldBody"])}, nil
			}
		}
	}
	// Argo Events webhook EventSource data: {header, body, metadata}.
	if isObject(obj["header"]) && has(obj, "body") {
		return "argo-events-webhook", unwrapped{data: obj["body"]}, nil
	}
	// Sensor payload with dataKey "@this" and contextKey "@this": {context, data}.
	if isObject(obj["context"]) && has(obj, "data") {
		m := contextMeta(obj["context"])
		return "sensor-context", unwrapped{data: obj["data"], meta: &m}, nil
	}
	// A structured-mode CloudEvent that arrived without its media type
	// (e.g. replayed from the JetStream bus): read as the handler reads
	// one that came with it.
	if _, ok := str(obj, "specversion"); ok {
		ev, err := ParseCloudEvent(data)
		if err != nil {
			return "", unwrapped{}, err
		}
		if nonNull(ev.Data()) == nil {
			return "", unwrapped{}, inputErrorf("cloudevent has no data")
		}
		m := Meta{ID: ev.ID(), Source: ev.Source(), Type: ev.Type(), Subject: ev.Subject(), Time: ev.Time()}
		return "cloudevent-json", unwrapped{data: ev.Data(), meta: &m, decoded: true}, nil
	}
	// A Sensor trigger with src.dependencyName alone sends the whole event
	// as a JSON string whose data is base64: {"event": "{\"context\":…,\"data\":\"…\"}"}.
	if s, ok := str(obj, "event"); ok && len(obj) <= 2 {
		var ev struct {
			Context json.RawMessage `json:"context"`
			Data    []byte          `json:"data"` // base64 in JSON
		}
		if err := json.Unmarshal([]byte(s), &ev); err != nil || len(ev.Data) == 0 {
			return "", unwrapped{}, inputErrorf("field \"event\" is not an Argo Events event")
		}
		m := contextMeta(ev.Context)
		return "sensor-event-string", unwrapped{data: ev.Data, meta: &m, decoded: true}, nil
	}
	// A Sensor payload that placed the notification under one key, e.g.
	// {"body": {…}, "bodyAsString": "…"} or {"notification": {…}}.
	for _, k := range []string{"body", "notification", "data", "payload", "object"} {
		if isObject(obj[k]) {
			return "sensor-payload." + k, unwrapped{data: obj[k]}, nil
		}
	}
	return "", unwrapped{}, nil
}

func isResourceEventType(t string) bool {
	return t == "ADD" || t == "UPDATE" || t == "DELETE"
}

func contextMeta(raw json.RawMessage) Meta {
	var c struct {
		ID      string `json:"id"`
		Source  string `json:"source"`
		Type    string `json:"type"`
		Subject string `json:"subject"`
		Time    string `json:"time"`
	}
	_ = json.Unmarshal(raw, &c) // best effort: the context is for logs only
	t, _ := time.Parse(time.RFC3339Nano, c.Time)
	return Meta{ID: c.ID, Source: c.Source, Type: c.Type, Subject: c.Subject, Time: t}
}

package inbound

import (
	"bytes"
	"encoding/json"
	"mime"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"function/internal/clip"
)

// ParseCloudEvent reads a structured-mode CloudEvent (the JSON event
// format) with the CloudEvents SDK and holds it to the spec. Whoever reads
// a structured event reads it here: the handler for
// application/cloudevents+json, and the decoder for one posted as plain
// JSON. Two gaps of the SDK (v2.16.2) are closed first:
//   - data_base64 that is not a string panics it (it cuts off the quotes it
//     assumes are there);
//   - it reads data as a string unless datacontenttype is exactly
//     application/json or text/json, so a JSON object under a "+json" media
//     type (application/vnd.example+json) fails, while the JSON event
//     format says such data is a JSON value. The data is taken here and the
//     SDK reads the attributes.
func ParseCloudEvent(body []byte) (event.Event, error) {
	var attrs map[string]json.RawMessage
	if err := json.Unmarshal(body, &attrs); err != nil {
		return event.Event{}, inputErrorf("invalid CloudEvent: %s", jsonErrText(err))
	}
	if b64, ok := attrs["data_base64"]; ok && !bytes.HasPrefix(b64, []byte(`"`)) {
		return event.Event{}, inputErrorf("invalid CloudEvent: data_base64 is not a string")
	}
	data, hasData := attrs["data"]
	jsonSuffix := false
	if hasData {
		var dct string
		_ = json.Unmarshal(attrs["datacontenttype"], &dct) // not a string: the SDK says so below
		mt, _, err := mime.ParseMediaType(dct)
		jsonSuffix = err == nil && strings.HasSuffix(mt, "+json")
	}
	if jsonSuffix {
		delete(attrs, "data")
		var err error
		if body, err = json.Marshal(attrs); err != nil {
			return event.Event{}, inputErrorf("invalid CloudEvent: %s", jsonErrText(err))
		}
	}
	var ev event.Event
	if err := json.Unmarshal(body, &ev); err != nil {
		return event.Event{}, invalidCloudEvent(err)
	}
	if jsonSuffix {
		ev.DataEncoded = data
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, invalidCloudEvent(err)
	}
	return ev, nil
}

// JSONMediaType reports whether a media type (lowercase, without
// parameters, as mime.ParseMediaType returns it) is JSON.
func JSONMediaType(mt string) bool {
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

// invalidCloudEvent is the SDK's complaint on one line, short.
func invalidCloudEvent(err error) error {
	return inputErrorf("invalid CloudEvent: %s", clip.Text(cleanString(strings.ReplaceAll(strings.TrimSpace(err.Error()), "\n", "; ")), 200))
}

package natskv

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every form in which nats.go v1.55 hands back the server's "wrong last
// sequence" is a lost compare-and-swap (store.ErrConflict), and nothing
// else is: an outage reported as a conflict would be retried as a race,
// and a conflict reported as an outage would answer 503.
func TestIsConflict(t *testing.T) {
	wrongSeq := &jetstream.APIError{Code: 400, ErrorCode: errCodeWrongLastSeq, Description: "wrong last sequence: 7"}
	wrongSeqR3 := &jetstream.APIError{Code: 400, ErrorCode: errCodeWrongLastSeqConstant, Description: "wrong last sequence"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"10071 as published (PublishMsg wraps it)", fmt.Errorf("nats: %w", wrongSeq), true},
		{"10164 as published", fmt.Errorf("nats: %w", wrongSeqR3), true},
		{"Create on R1 (ErrKeyExists by code)", fmt.Errorf("%w: key exists", fmt.Errorf("nats: %w", wrongSeq)), true},
		{"Create on R3 (10164 wrapped with ErrKeyExists)", fmt.Errorf("%w: %w", fmt.Errorf("nats: %w", wrongSeqR3), jetstream.ErrKeyExists), true},
		{"Update/Delete (ErrKeyRevisionMismatch)", fmt.Errorf("%w: %w", fmt.Errorf("nats: %w", wrongSeqR3), jetstream.ErrKeyRevisionMismatch), true},
		{"ErrKeyExists itself", jetstream.ErrKeyExists, true},
		{"key not found", jetstream.ErrKeyNotFound, false},
		{"no message", &jetstream.APIError{Code: 404, ErrorCode: errCodeNoMessageFound}, false},
		{"cluster not available", &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, false},
		{"no responders", nats.ErrNoResponders, false},
		{"no stream response", jetstream.ErrNoStreamResponse, false},
		{"deadline", context.DeadlineExceeded, false},
		{"nil", nil, false},
	} {
		if got := isConflict(tc.err); got != tc.want {
			t.Errorf("%s: isConflict(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

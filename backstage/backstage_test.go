package backstage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"function/atlassian"
	"function/internal/emulator"
)

// newClient returns a client with token, talking to an emulated Backstage
// backend whose catalog has one team of two.
func newClient(t *testing.T, token string) (*Client, *emulator.Emulator) {
	t.Helper()
	emu := emulator.New(emulator.Options{BackstageGroups: map[string][]string{
		"group:default/payments-team": {"user:default/jdoe", "user:default/asmith"},
	}})
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	return New(atlassian.New(atlassian.Options{
		BaseURL: ts.URL, Service: "backstage", Timeout: 5 * time.Second,
		Auth: atlassian.StaticAuth(atlassian.Auth{Bearer: token}),
	})), emu
}

// A notification reaches every member of the owning team; a repeat with
// the same scope updates it in place (one per rollback, however many
// events); a broadcast reaches everyone once.
func TestSend(t *testing.T) {
	c, emu := newClient(t, emulator.DefaultBackstageToken)
	ctx := context.Background()
	n := Notification{
		EntityRefs: []string{"group:default/payments-team"}, Title: "Rollback: payments/checkout", Description: "aborted",
		Link: "https://x.atlassian.net/browse/OPS-1", Severity: "high", Topic: "rollback-incident", Scope: "rollback:abc",
	}
	if err := c.Send(ctx, n); err != nil {
		t.Fatal(err)
	}
	n.Title, n.Description = "Rollback: payments/checkout (analysis failed)", "analysis failed"
	if err := c.Send(ctx, n); err != nil {
		t.Fatal(err)
	}
	got := emu.Notifications()
	if len(got) != 2 {
		t.Fatalf("%d notifications after two sends to a team of two, want 2: %+v", len(got), got)
	}
	users := map[string]bool{}
	for _, g := range got {
		users[g.User] = true
		p := g.Payload
		if p.Title != n.Title || p.Description != n.Description || p.Link != n.Link || p.Severity != "high" ||
			p.Topic != n.Topic || p.Scope != n.Scope || g.Broadcast {
			t.Errorf("notification %+v, want the second send's fields for one user", g)
		}
	}
	if !users["user:default/jdoe"] || !users["user:default/asmith"] {
		t.Errorf("recipients %v, want both members", users)
	}

	if err := c.Send(ctx, Notification{Broadcast: true, Title: "Rollback with no known owner", Severity: "normal", Scope: "rollback:def"}); err != nil {
		t.Fatal(err)
	}
	got = emu.Notifications()
	if len(got) != 3 || !got[2].Broadcast || got[2].User != "" || got[2].Payload.Title != "Rollback with no known owner" {
		t.Errorf("after a broadcast: %+v, want one broadcast more", got)
	}
}

// A token Backstage does not know is refused, and the error says so.
func TestSendRefused(t *testing.T) {
	c, emu := newClient(t, "not-the-token")
	err := c.Send(context.Background(), Notification{Broadcast: true, Title: "t"})
	ae, ok := atlassian.AsError(err)
	if !ok || ae.Status != http.StatusUnauthorized {
		t.Errorf("err = %v, want a 401", err)
	}
	if n := len(emu.Notifications()); n != 0 {
		t.Errorf("%d notifications stored from a refused call", n)
	}
}

package confluence

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"function/atlassian"
	"function/internal/emulator"
)

func newClient(t *testing.T) (*Client, *emulator.Emulator) {
	t.Helper()
	emu := emulator.New(emulator.Options{})
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	emu.SetBaseURL(ts.URL)
	base := ts.URL + "/wiki"
	return New(base, atlassian.New(atlassian.Options{
		BaseURL: base, Service: "confluence", Timeout: 2 * time.Second,
		Auth: atlassian.StaticAuth(atlassian.Auth{Email: emulator.DefaultEmail, APIToken: emulator.DefaultAPIToken}),
	})), emu
}

// TestPageLifecycle runs the client against the emulator: resolve the
// space, create, duplicate, find by title, read and update with the
// version check.
func TestPageLifecycle(t *testing.T) {
	c, emu := newClient(t)
	ctx := context.Background()
	space, err := c.SpaceID(ctx, "incidents") // keys match case-insensitively
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SpaceID(ctx, "NOPE"); !errors.Is(err, ErrSpaceNotFound) {
		t.Errorf("unknown space: %v", err)
	}
	p, err := c.CreatePage(ctx, NewPage{SpaceID: space, Title: "Postmortem OPS-1: x", Storage: "<p>hello &amp; bye</p>"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID == "" || p.Version != 1 || !strings.Contains(p.URL, "/wiki/spaces/INCIDENTS/pages/"+p.ID+"/") {
		t.Errorf("page %+v", p)
	}
	if _, err := c.CreatePage(ctx, NewPage{SpaceID: space, Title: "postmortem ops-1: X", Storage: "<p/>"}); !errors.Is(err, ErrDuplicateTitle) {
		t.Errorf("duplicate title: %v", err)
	}
	found, ok, err := c.FindByTitle(ctx, space, "Postmortem OPS-1: x")
	if err != nil || !ok || found.ID != p.ID || found.URL != p.URL {
		t.Errorf("find: %+v %v %v", found, ok, err)
	}
	stored, err := c.GetPage(ctx, p.ID)
	if err != nil || stored.ID != p.ID || stored.Version != 1 || !strings.Contains(stored.Storage, "hello") {
		t.Fatalf("get: %+v %v", stored, err)
	}
	if err := c.UpdatePage(ctx, stored, stored.Storage+"<p>more</p>", 2, "timeline"); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := c.UpdatePage(ctx, stored, "<p>stale</p>", 2, "again"); !errors.Is(err, ErrVersionConflict) {
		t.Errorf("stale update: %v", err)
	}
	pages := emu.Pages()
	last := pages[len(pages)-1]
	if last.Version != 2 || !strings.Contains(last.Body, "more") {
		t.Errorf("after update: %+v", last)
	}
	if _, err := c.CreatePage(ctx, NewPage{SpaceID: space, Title: "bad", Storage: "<p>unclosed"}); err == nil || !atlassian.HasStatus(err, 400) {
		t.Errorf("malformed storage: %v", err)
	}
}

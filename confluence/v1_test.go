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

// newV1 returns a v1 client of the emulator at its Data Center path
// (no /wiki, Bearer PAT) or its Cloud site path (/wiki, Basic auth).
func newV1(t *testing.T, dc bool) (*V1, *emulator.Emulator) {
	t.Helper()
	emu := emulator.New(emulator.Options{BearerToken: "dc-pat"})
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	emu.SetBaseURL(ts.URL)
	base, auth := ts.URL+"/wiki", atlassian.Auth{Email: emulator.DefaultEmail, APIToken: emulator.DefaultAPIToken}
	if dc {
		base, auth = ts.URL, atlassian.Auth{Bearer: "dc-pat"}
	}
	return NewV1(base, atlassian.New(atlassian.Options{
		BaseURL: base, Service: "confluence", Timeout: 2 * time.Second, Auth: atlassian.StaticAuth(auth),
	})), emu
}

// TestV1PageLifecycle runs the v1 client against both v1 paths of the
// emulator, which reject a space change on update and Data Center's
// unknown "archived" status, as Confluence does.
func TestV1PageLifecycle(t *testing.T) {
	for _, dc := range []bool{true, false} {
		t.Run(map[bool]string{true: "datacenter", false: "cloud"}[dc], func(t *testing.T) {
			c, emu := newV1(t, dc)
			ctx := context.Background()
			space, err := c.SpaceID(ctx, "INCIDENTS")
			if err != nil || space != "INCIDENTS" {
				t.Fatalf("space: %q %v", space, err)
			}
			if _, err := c.SpaceID(ctx, "NOPE"); !errors.Is(err, ErrSpaceNotFound) {
				t.Errorf("unknown space: %v", err)
			}
			p, err := c.CreatePage(ctx, NewPage{SpaceID: space, Title: "Postmortem OPS-1: x", Storage: "<p>hello</p>"})
			if err != nil || p.ID == "" || p.Version != 1 {
				t.Fatalf("create: %+v %v", p, err)
			}
			if _, err := c.CreatePage(ctx, NewPage{SpaceID: space, Title: "postmortem ops-1: X", Storage: "<p/>"}); !errors.Is(err, ErrDuplicateTitle) {
				t.Errorf("duplicate title: %v", err)
			}
			found, ok, err := c.FindByTitle(ctx, space, "Postmortem OPS-1: x")
			if err != nil || !ok || found.ID != p.ID || found.URL != p.URL {
				t.Fatalf("find: %+v %v %v", found, ok, err)
			}
			if _, ok, err := c.FindByTitle(ctx, space, "No such page"); err != nil || ok {
				t.Errorf("find a missing page: %v %v", ok, err)
			}
			stored, err := c.GetPage(ctx, p.ID)
			if err != nil || stored.Version != 1 || stored.Storage != "<p>hello</p>" {
				t.Fatalf("get: %+v %v", stored, err)
			}
			if err := c.UpdatePage(ctx, stored, stored.Storage+"<p>timeline</p>", 2, "timeline"); err != nil {
				t.Fatalf("update: %v", err)
			}
			if err := c.UpdatePage(ctx, stored, "<p>stale</p>", 2, "again"); !errors.Is(err, ErrVersionConflict) {
				t.Errorf("stale update: %v", err)
			}
			// A Stored that did not come from GetPage names no space,
			// which the API allows.
			bare := Stored{Page: Page{ID: p.ID, Title: p.Title}}
			if err := c.UpdatePage(ctx, bare, "<p>third</p>", 3, ""); err != nil {
				t.Fatalf("update without a space: %v", err)
			}
			var page emulator.Page
			for _, x := range emu.Pages() {
				if x.ID == p.ID {
					page = x
				}
			}
			if page.Version != 3 || page.Body != "<p>third</p>" || page.SpaceKey != "INCIDENTS" {
				t.Errorf("page after the updates: %+v", page)
			}
			if found, ok, err := c.FindByTitle(ctx, space, "Postmortem OPS-1: x"); err != nil || !ok || found.Version != 3 {
				t.Errorf("find after the updates: %+v %v %v", found, ok, err)
			}
		})
	}
}

// TestV1UpdateNamesThePageSpace checks the body the update sends: the
// space GetPage read, exactly; an emptied or changed key is refused.
func TestV1UpdateNamesThePageSpace(t *testing.T) {
	c, _ := newV1(t, true)
	ctx := context.Background()
	p, err := c.CreatePage(ctx, NewPage{SpaceID: "INCIDENTS", Title: "Postmortem", Storage: "<p/>"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := c.GetPage(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.spaceKey != "INCIDENTS" {
		t.Fatalf("GetPage read space %q", stored.spaceKey)
	}
	wrong := stored
	wrong.spaceKey = "incidents"
	err = c.UpdatePage(ctx, wrong, "<p>x</p>", 2, "")
	if ae, ok := atlassian.AsError(err); !ok || ae.Status != 400 || !strings.Contains(ae.Error(), "Could not update Content") {
		t.Errorf("update naming another space: %v", err)
	}
	if err := c.UpdatePage(ctx, stored, "<p>x</p>", 2, ""); err != nil {
		t.Errorf("update naming the page's space: %v", err)
	}
}

package jira

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"function/atlassian"
	"function/internal/emulator"
	"function/render/adf"
)

// flavours are the two Jira deployments, each with the credentials the
// emulator accepts from it.
var flavours = []struct {
	name string
	f    Flavour
	auth atlassian.Auth
}{
	{"cloud", Cloud, atlassian.Auth{Email: emulator.DefaultEmail, APIToken: emulator.DefaultAPIToken}},
	{"datacenter", DataCenter, atlassian.Auth{Bearer: "dc-pat"}},
}

// newClient returns a client of flavour f with auth, talking to an
// emulator in process.
func newClient(t *testing.T, f Flavour, auth atlassian.Auth) (*Client, *emulator.Emulator) {
	t.Helper()
	emu := emulator.New(emulator.Options{BearerToken: "dc-pat"})
	ts := httptest.NewServer(emu)
	t.Cleanup(ts.Close)
	emu.SetBaseURL(ts.URL)
	return New(ts.URL, atlassian.New(atlassian.Options{
		BaseURL: ts.URL, Service: "jira", Timeout: 5 * time.Second, Auth: atlassian.StaticAuth(auth),
	}), f), emu
}

func comment(text, id string) Comment {
	return Comment{ADF: adf.NewDoc(adf.Paragraph(adf.Text(text))), Wiki: text, ID: id}
}

func newIssue(t *testing.T, c *Client) string {
	t.Helper()
	is, err := c.CreateIssue(context.Background(), NewIssue{
		Project: "OPS", IssueType: "Incident", Summary: "Rollback of payments-api",
		Description: adf.NewDoc(adf.Paragraph(adf.Text("aborted"))), WikiDescription: "aborted", Labels: []string{"rbk-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return is.Key
}

func TestCommentIDs(t *testing.T) {
	for _, fl := range flavours {
		t.Run(fl.name, func(t *testing.T) {
			c, emu := newClient(t, fl.f, fl.auth)
			ctx := context.Background()
			key := newIssue(t, c)
			ids, err := c.CommentIDs(ctx, key)
			if err != nil || len(ids) != 0 {
				t.Fatalf("no comments yet: %v %v", ids, err)
			}
			// More than one page of comments (100), with and without
			// identities; people's comments carry none.
			want := map[string]bool{}
			for i := range 130 {
				id := ""
				if i%3 != 1 {
					id = fmt.Sprintf("ev-%03d", i)
					want[id] = true
				}
				if err := c.AddComment(ctx, key, comment(fmt.Sprintf("news %d", i), id)); err != nil {
					t.Fatalf("comment %d: %v", i, err)
				}
			}
			ids, err = c.CommentIDs(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(ids, want) {
				t.Errorf("CommentIDs: %d ids, want %d; missing %v", len(ids), len(want), missing(want, ids))
			}
			// What the emulator stored: the property, in the dialect's body.
			cs := emu.Comments(key)
			if len(cs) != 130 || string(cs[0].Properties["rollback-incident"]) != `{"id":"ev-000"}` || cs[1].Properties != nil {
				t.Fatalf("stored comments: %d, first %+v, second %+v", len(cs), cs[0], cs[1])
			}
			if (fl.f == DataCenter) != (cs[0].BodyWiki == "news 0") {
				t.Errorf("first comment body: %+v", cs[0])
			}
			if _, err := c.CommentIDs(ctx, "OPS-999"); !atlassian.HasStatus(err, 404) {
				t.Errorf("unknown issue: %v", err)
			}
		})
	}
}

// TestCommentAnswerLost is why comments carry an identity: the comment
// is posted, its answer is lost, AddComment fails, and CommentIDs shows
// that it must not be posted again.
func TestCommentAnswerLost(t *testing.T) {
	for _, fl := range flavours {
		t.Run(fl.name, func(t *testing.T) {
			c, emu := newClient(t, fl.f, fl.auth)
			ctx := context.Background()
			key := newIssue(t, c)
			route := "POST /rest/api/3/issue/{issueIdOrKey}/comment"
			if fl.f == DataCenter {
				route = "POST /rest/api/2/issue/{issueIdOrKey}/comment"
			}
			emu.InjectFault(route, emulator.Fault{Applied: true, Reset: true}, 1)
			err := c.AddComment(ctx, key, comment("analysis failed", "ev-1"))
			if err == nil || !atlassian.IsTemporary(err) {
				t.Fatalf("AddComment after a lost answer: %v, want a temporary error", err)
			}
			if n := len(emu.Comments(key)); n != 1 {
				t.Fatalf("comments = %d: the client repeated a non-idempotent post, or it did not take effect", n)
			}
			ids, err := c.CommentIDs(ctx, key)
			if err != nil || !ids["ev-1"] {
				t.Errorf("CommentIDs = %v, %v; want ev-1", ids, err)
			}
		})
	}
}

func TestMyself(t *testing.T) {
	wrong := map[Flavour]atlassian.Auth{
		Cloud:      {Email: emulator.DefaultEmail, APIToken: "revoked"},
		DataCenter: {Bearer: "old-pat"},
	}
	for _, fl := range flavours {
		t.Run(fl.name, func(t *testing.T) {
			c, _ := newClient(t, fl.f, fl.auth)
			if err := c.Myself(context.Background()); err != nil {
				t.Errorf("right credentials: %v", err)
			}
			c, emu := newClient(t, fl.f, wrong[fl.f])
			err := c.Myself(context.Background())
			if !atlassian.HasStatus(err, 401) || atlassian.IsTemporary(err) {
				t.Errorf("wrong credentials: %v, want a permanent 401", err)
			}
			myself := "GET /rest/api/3/myself"
			if fl.f == DataCenter {
				myself = "GET /rest/api/2/myself"
			}
			if n := emu.Calls()[myself]; n != 2 {
				t.Errorf("%s called %d times, want 2 (the call and one refetch of the credentials)", myself, n)
			}
		})
	}
}

func missing(want, got map[string]bool) []string {
	var out []string
	for id := range want {
		if !got[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// SetDescription writes what Description reads back, in the form each
// Jira stores; the description the issue was created with reads back too.
func TestDescriptionRoundTrip(t *testing.T) {
	for _, fl := range flavours {
		t.Run(fl.name, func(t *testing.T) {
			c, _ := newClient(t, fl.f, fl.auth)
			ctx := context.Background()
			key := newIssue(t, c)
			adfJSON, wiki, err := c.Description(ctx, key)
			if err != nil || !strings.Contains(string(adfJSON)+wiki, "aborted") {
				t.Fatalf("created description: %s %q %v", adfJSON, wiki, err)
			}
			doc := adf.NewDoc(adf.Heading(2, "Facts"), adf.Paragraph(adf.Text("facts, "), adf.Text("rewritten", adf.Strong())))
			const wikiText = "h2. Facts\nfacts, *rewritten*"
			if err := c.SetDescription(ctx, key, doc, wikiText); err != nil {
				t.Fatal(err)
			}
			adfJSON, wiki, err = c.Description(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if fl.f == DataCenter && wiki != wikiText {
				t.Errorf("after SetDescription: wiki %q, want %q", wiki, wikiText)
			}
			if fl.f == Cloud {
				sent, _ := json.Marshal(doc)
				var got, want any
				if json.Unmarshal(adfJSON, &got) != nil || json.Unmarshal(sent, &want) != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("after SetDescription: %s, want %s", adfJSON, sent)
				}
			}
			if fl.f == Cloud && (len(adfJSON) == 0 || wiki != "") || fl.f == DataCenter && (adfJSON != nil || wiki == "") {
				t.Errorf("description in the wrong form for %s: %s %q", fl.name, adfJSON, wiki)
			}
		})
	}
}

// A person's edit, made through Jira's own API as the web UI does, is what
// Description reads next, in the form that Jira stores; an unknown issue is
// a 404 for both calls, not an empty description.
func TestDescriptionSeesAPersonsEdit(t *testing.T) {
	for _, fl := range flavours {
		t.Run(fl.name, func(t *testing.T) {
			c, emu := newClient(t, fl.f, fl.auth)
			ctx := context.Background()
			key := newIssue(t, c)
			if err := c.SetDescription(ctx, key, adf.NewDoc(adf.Paragraph(adf.Text("written by the function"))), "written by the function"); err != nil {
				t.Fatal(err)
			}

			var desc any = "h2. Edited by a person\nroot cause: a bad config map"
			if fl.f == Cloud {
				desc = map[string]any{"type": "doc", "version": 1, "content": []any{
					map[string]any{"type": "heading", "attrs": map[string]any{"level": 2}, "content": []any{map[string]any{"type": "text", "text": "Edited by a person"}}},
					map[string]any{"type": "paragraph", "content": []any{map[string]any{"type": "text", "text": "root cause: a bad config map"}}},
				}}
			}
			body, err := json.Marshal(map[string]any{"fields": map[string]any{"description": desc}})
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.baseURL+c.api+"/issue/"+key, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if fl.f == Cloud {
				req.SetBasicAuth(emulator.DefaultEmail, emulator.DefaultAPIToken)
			} else {
				req.Header.Set("Authorization", "Bearer dc-pat")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("the person's edit: %d", resp.StatusCode)
			}

			adfJSON, wiki, err := c.Description(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if fl.f == Cloud {
				var got, want any
				wantJSON, _ := json.Marshal(desc)
				if json.Unmarshal(adfJSON, &got) != nil || json.Unmarshal(wantJSON, &want) != nil || !reflect.DeepEqual(got, want) || wiki != "" {
					t.Errorf("Description after a person's edit: %s %q, want %s", adfJSON, wiki, wantJSON)
				}
			} else if wiki != desc || adfJSON != nil {
				t.Errorf("Description after a person's edit: %s %q, want %q", adfJSON, wiki, desc)
			}
			if is, _ := emu.Issue(key); !strings.Contains(string(is.Description)+is.DescriptionWiki, "root cause") {
				t.Errorf("emulator holds %+v", is)
			}

			for name, call := range map[string]func() error{
				"Description":    func() error { _, _, err := c.Description(ctx, "OPS-999"); return err },
				"SetDescription": func() error { return c.SetDescription(ctx, "OPS-999", adf.NewDoc(adf.Paragraph(adf.Text("x"))), "x") },
			} {
				err := call()
				if ae, ok := atlassian.AsError(err); !ok || ae.Status != http.StatusNotFound {
					t.Errorf("%s of an unknown issue: %v, want a 404", name, err)
				}
			}
		})
	}
}

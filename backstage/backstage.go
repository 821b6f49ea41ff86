// Package backstage sends notifications to the Backstage notifications
// backend (@backstage/plugin-notifications-backend): POST
// {base}/api/notifications/notifications with a static external-access
// token. Its payload.scope makes a repeat update the notification instead
// of adding one, which is what keeps one notification per rollback.
package backstage

import (
	"context"
	"net/http"

	"function/atlassian"
)

// Client sends notifications. It rides on the same HTTP layer as the
// Atlassian clients (timeouts, retries, Retry-After), which is generic.
type Client struct{ c *atlassian.Client }

// New returns a client over c, whose base URL is the Backstage backend.
func New(c *atlassian.Client) *Client { return &Client{c: c} }

// Notification is one notification.
type Notification struct {
	// EntityRefs are the recipients, e.g. group:default/payments-team;
	// Backstage expands groups to their users. Empty with Broadcast.
	EntityRefs  []string
	Broadcast   bool
	Title       string
	Description string
	Link        string
	Severity    string // critical, high, normal or low
	Topic       string
	Scope       string // repeats with one scope update one notification
}

type request struct {
	Recipients recipients `json:"recipients"`
	Payload    payload    `json:"payload"`
}

type recipients struct {
	Type      string   `json:"type"`
	EntityRef []string `json:"entityRef,omitempty"`
}

type payload struct {
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
	Link        string `json:"link,omitempty"`
	Severity    string `json:"severity,omitempty"`
	Topic       string `json:"topic,omitempty"`
	Scope       string `json:"scope,omitempty"`
}

// Send creates or, for a known scope, updates the notification.
func (c *Client) Send(ctx context.Context, n Notification) error {
	r := recipients{Type: "entity", EntityRef: n.EntityRefs}
	if n.Broadcast {
		r = recipients{Type: "broadcast"}
	}
	_, err := c.c.Do(ctx, atlassian.Call{
		Op: "send notification", Method: http.MethodPost, Path: "/api/notifications/notifications",
		Idempotent: true, // the scope makes a repeat an update
		Body: request{Recipients: r, Payload: payload{
			Title: n.Title, Description: n.Description, Link: n.Link, Severity: n.Severity, Topic: n.Topic, Scope: n.Scope,
		}},
	})
	return err
}

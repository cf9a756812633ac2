package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// LinkRequest asks for a one-time sign-in link to the web console.
type LinkRequest struct {
	User string `json:"user"` // the local user the link signs in
}

// Link is a one-time sign-in link to the web console of the replica that
// made it (sessions and links live on one replica). Path is under /ui/
// and carries the link's secret: put the replica's API URL before it and
// hand the result to the user only. It signs in once, until Expires.
type Link struct {
	User    string    `json:"user"`
	Path    string    `json:"path"`
	Expires time.Time `json:"expires"`
}

// LinkBackend is a Backend that serves the web console and makes its
// one-time sign-in links (POST /v1/ui/links). A Backend without it has
// no such route.
type LinkBackend interface {
	// ConsoleLink makes a one-time sign-in link for the local user named
	// user; the caller's permission (manage_users) is checked before.
	ConsoleLink(ctx context.Context, actor User, user string) (Link, error)
}

// linkRoutes registers the console's sign-in link route. A link signs its
// user in as a token would: only who may manage users may make one.
func (s *Server) linkRoutes() {
	b, ok := s.cfg.Backend.(LinkBackend)
	if !ok {
		return
	}
	s.auth("POST /v1/ui/links", "manage_users", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req LinkRequest
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		if req.User == "" {
			return nil, fmt.Errorf("make sign-in link: name the user (\"user\"): %w", ErrBadRequest)
		}
		return b.ConsoleLink(ctx, u, req.User)
	})
}

// ConsoleLink asks the node for a one-time sign-in link for user
// (POST /v1/ui/links). The link is good on the replica at BaseURL only.
func (c *Client) ConsoleLink(ctx context.Context, user string) (Link, error) {
	var out Link
	err := c.do(ctx, http.MethodPost, "/v1/ui/links", LinkRequest{User: user}, &out)
	return out, err
}

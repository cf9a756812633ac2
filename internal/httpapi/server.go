// Package httpapi implements the local HTTP API of an xborder node (JSON,
// described in docs/api.yaml) and the client the CLI uses to call it.
//
// The handlers know nothing of libp2p, Raft or files: they call a Backend,
// which the node implements. Every route but /healthz, /readyz and /metrics
// needs a bearer token; the Backend authenticates it and authorises the
// route's action through the policy in force:
//
//	request ──▶ Authenticate(token) ──(failed)──▶ limit of failed logins
//	        ──▶ Authorize(user, action) ──▶ handler ──▶ Backend
//	        ──▶ JSON answer, or Status(err) ──▶ {"error", "code"}
//
// Errors map to HTTP statuses in one place, StatusOf: the package's own
// sentinels and the ledger's (ErrNoQuorum answers 503 with the reason).
//
// # Security
//
// Tokens are compared by the Backend through their SHA-256 only. Failed
// authentications are logged with the remote address and never the token.
// Past Config.MaxFailures failures a minute with one token, or from one
// address, a failed authentication is answered 429 and not logged; the
// limit is consulted only after a token fails, so a valid token is never
// locked out by anyone's failures. Bearer tokens over plain HTTP are only
// safe on loopback: the node serves this handler over TLS anywhere else, and
// AgencyHTTPClient is the client that checks its certificate.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// DefaultMaxFailures is the default number of failed authentications
// allowed per minute with one token, or from one address.
const DefaultMaxFailures = 10

// maxBody bounds a request body (a policy or a card fits easily).
const maxBody = 4 << 20

// Config configures a Server.
type Config struct {
	// Backend serves the requests. Required.
	Backend Backend
	// Metrics serves /metrics. Nil: no /metrics route.
	Metrics http.Handler
	// Observe is called after each request with its route pattern and
	// status. Nil: nothing is observed.
	Observe func(route string, status int, d time.Duration)
	// MaxFailures is how many failed authentications one token, or one
	// address, may make per minute before further failures are answered
	// 429. A valid token is always served. Zero: DefaultMaxFailures.
	MaxFailures int
	// Logger receives request errors and failed authentications. Nil:
	// discard.
	Logger *slog.Logger
	// Now is the clock of the rate limiter. Nil: time.Now.
	Now func() time.Time
}

// Server is the API's http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux

	failures *failures

	patterns []string // routes, as registered
}

// New returns the API handler.
func New(cfg Config) *Server {
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: log.With("component", "api"), mux: http.NewServeMux(),
		failures: newFailures(cfg.MaxFailures, cfg.Now)}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// handler is a route's work once the user is authenticated and authorised.
type handler func(ctx context.Context, u User, r *http.Request) (any, error)

func (s *Server) routes() {
	s.open("GET /healthz", func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.open("GET /readyz", func(w http.ResponseWriter, r *http.Request) error {
		if err := s.cfg.Backend.Ready(); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if s.cfg.Metrics != nil {
		s.open("GET /metrics", func(w http.ResponseWriter, r *http.Request) error {
			s.cfg.Metrics.ServeHTTP(w, r)
			return nil
		})
	}
	b := s.cfg.Backend
	s.auth("GET /v1/status", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Status(), nil
	})
	s.auth("GET /v1/card", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Card(ctx)
	})
	s.auth("POST /v1/users", "manage_users", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req User
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.AddUser(ctx, u, req.Name, req.Role)
	})
	s.auth("GET /v1/users", "manage_users", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Users(ctx)
	})
	s.auth("DELETE /v1/users/{name}", "manage_users", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return nil, b.RemoveUser(ctx, u, r.PathValue("name"))
	})
	s.auth("POST /v1/partners", "manage_partners", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req AddPartner
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.AddPartner(ctx, u, req)
	})
	s.auth("GET /v1/partners", "manage_partners", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Partners(ctx)
	})
	s.auth("DELETE /v1/partners/{agency}", "manage_partners", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return nil, b.RemovePartner(ctx, u, r.PathValue("agency"))
	})
	// A join bundle carries the agency key and seed: manage_keys.
	s.auth("POST /v1/replicas", "manage_keys", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req AddReplica
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.AddReplica(ctx, u, req)
	})
	s.auth("GET /v1/replicas", "manage_keys", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Replicas(ctx)
	})
	s.auth("DELETE /v1/replicas/{id}", "manage_keys", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return nil, b.RemoveReplica(ctx, u, r.PathValue("id"))
	})
	s.auth("GET /v1/policy", "", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return PolicyVersion{Version: b.PolicyVersion()}, nil
	})
	s.auth("POST /v1/policy", "manage_policy", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req PolicyFiles
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		v, err := b.ApplyPolicy(ctx, u, policy.Files{PolicyName: req.PolicyName, Policy: []byte(req.Policy),
			LimitsName: req.LimitsName, Limits: []byte(req.Limits)})
		if err != nil {
			return nil, err
		}
		return PolicyVersion{Version: v}, nil
	})
	s.auth("GET /v1/ledger/entries", "read_ledger", func(ctx context.Context, u User, r *http.Request) (any, error) {
		f, err := parseFilter(r)
		if err != nil {
			return nil, err
		}
		return b.Entries(ctx, u, r.URL.Query().Get("purpose"), f)
	})
	s.auth("GET /v1/ledger/entries/{index}", "read_ledger", func(ctx context.Context, u User, r *http.Request) (any, error) {
		i, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("entry index %q is not a number: %w", r.PathValue("index"), ErrBadRequest)
		}
		return b.Entry(ctx, u, r.URL.Query().Get("purpose"), i)
	})
	s.auth("GET /v1/ledger/checkpoint", "read_ledger", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Checkpoint(ctx)
	})
	s.auth("POST /v1/ledger/export", "export", func(ctx context.Context, u User, r *http.Request) (any, error) {
		return b.Export(ctx, u)
	})
	// Pruning deletes audit data: only who may change the policy (whose
	// limits file sets the retention) may do it.
	s.auth("POST /v1/ledger/prune", "manage_policy", func(ctx context.Context, u User, r *http.Request) (any, error) {
		var req PruneRequest
		if err := readJSON(r, &req); err != nil {
			return nil, err
		}
		return b.Prune(ctx, u, req.Before)
	})
	s.queryRoutes()
	s.dataRoutes()
	s.linkRoutes()
	s.refuseRoutes()
	s.followupOutRoutes()
	s.followupInRoutes()
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// open registers a route that needs no token.
func (s *Server) open(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		sw := &statusWriter{ResponseWriter: w}
		if err := fn(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
		s.observe(pattern, sw.status, start)
	})
}

// auth registers a route that needs a token and, unless action is empty,
// the policy's permission for action.
func (s *Server) auth(pattern, action string, fn handler) {
	s.patterns = append(s.patterns, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.cfg.Now()
		sw := &statusWriter{ResponseWriter: w}
		if err := s.serve(sw, r, action, fn); err != nil {
			s.writeError(sw, r, err)
		}
		s.observe(pattern, sw.status, start)
	})
}

func (s *Server) observe(route string, status int, start time.Time) {
	if s.cfg.Observe != nil {
		s.cfg.Observe(route, status, s.cfg.Now().Sub(start))
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, action string, fn handler) error {
	host := remoteHost(r)
	failed := func(reason string, err error, keys ...string) error {
		if wait := s.failures.fail(keys...); wait > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
			return fmt.Errorf("authenticate: %w; retry in %s", ErrTooMany, wait.Round(time.Second))
		}
		s.log.Warn("authentication failed", "remote", host, "route", r.Pattern, "reason", reason)
		return err
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		return failed("no bearer token", fmt.Errorf("authenticate: no bearer token: %w", ErrUnauthorized), "host:"+host)
	}
	u, err := s.cfg.Backend.Authenticate(tok)
	if errors.Is(err, ErrUnauthorized) {
		return failed("unknown token", err, tokenKey(tok), "host:"+host)
	}
	if err != nil {
		return err
	}
	if action != "" {
		if err := s.cfg.Backend.Authorize(u, action); err != nil {
			s.log.Info("request denied", "user", u.Name, "role", u.Role, "action", action)
			return err
		}
	}
	out, err := fn(r.Context(), u, r)
	if err != nil {
		return err
	}
	if out == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return writeJSON(w, http.StatusOK, out)
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error string `json:"error"` // a sentence for the user
	Code  string `json:"code"`  // stable: bad_request, unauthorized, forbidden, not_found, conflict, too_many, unavailable, internal
}

// StatusOf maps an error to its HTTP status and stable code. It is the only
// place that does.
func StatusOf(err error) (int, string) {
	var fe *policy.FileError
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, ErrTooMany):
		return http.StatusTooManyRequests, "too_many"
	case errors.Is(err, ErrUnavailable), errors.Is(err, ledger.ErrNoQuorum),
		errors.Is(err, ledger.ErrHalted), errors.Is(err, ledger.ErrClosed):
		return http.StatusServiceUnavailable, "unavailable"
	case errors.Is(err, ErrNotFound), errors.Is(err, ledger.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrConflict):
		return http.StatusConflict, "conflict"
	case errors.Is(err, ErrBadRequest), errors.As(err, &fe), errors.Is(err, ledger.ErrInvalid),
		errors.Is(err, ledger.ErrRetention):
		return http.StatusBadRequest, "bad_request"
	}
	return http.StatusInternalServerError, "internal"
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := StatusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("request failed", "route", r.Pattern, "err", err)
		msg = "internal error; see the node's log"
	}
	writeJSON(w, status, ErrorBody{Error: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// readJSON decodes the request body into v, refusing unknown fields.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("read request body: %v: %w", err, ErrBadRequest)
	}
	return nil
}

// parseFilter reads a ledger filter from the query string: from, to
// (RFC 3339), type (repeatable), partner, case, actor, after, limit.
func parseFilter(r *http.Request) (ledger.Filter, error) {
	q := r.URL.Query()
	var f ledger.Filter
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"from", &f.From}, {"to", &f.To}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return f, fmt.Errorf("%s %q is not an RFC 3339 time: %w", p.name, v, ErrBadRequest)
			}
			*p.dst = t
		}
	}
	for _, v := range q["type"] {
		t, err := ledger.ParseType(v)
		if err != nil {
			return f, fmt.Errorf("type %q: %v: %w", v, err, ErrBadRequest)
		}
		f.Types = append(f.Types, t)
	}
	f.Partner, f.Case, f.Actor = q.Get("partner"), q.Get("case"), q.Get("actor")
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, fmt.Errorf("after %q is not a number: %w", v, ErrBadRequest)
		}
		f.After = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, fmt.Errorf("limit %q is not a number: %w", v, ErrBadRequest)
		}
		f.Limit = n
	}
	return f, nil
}

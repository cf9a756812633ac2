package console

import (
	"context"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// Defaults of Config.
const (
	// DefaultSessionTTL is how long a session lasts when Config.SessionTTL
	// is zero.
	DefaultSessionTTL = 8 * time.Hour
	// DefaultMaxFailures is how many failed sign-ins one address may make
	// a minute when Config.MaxFailures is zero.
	DefaultMaxFailures = 10
)

// Prefix is the path the console is served under.
const Prefix = "/ui/"

// Cookie names.
const (
	sessionCookie = "xborder_session"
	preCookie     = "xborder_signin" // before sign-in: the sign-in form's CSRF
)

// maxForm bounds a form body (a pasted query list fits easily).
const maxForm = 4 << 20

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures a Console.
type Config struct {
	// Backend is the node. Required.
	Backend Backend
	// LedgerKey is the note verifier key of the agency's ledger
	// (format.VerifierKey of the agency public key): the auditor's page
	// verifies checkpoints with it. Empty: the page says that no
	// checkpoint can be verified, and verifies none.
	LedgerKey string
	// Agency is the agency's code, shown in page titles. Empty: none shown.
	Agency string
	// SessionTTL is how long a session lasts. Zero: DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxFailures is how many failed sign-ins one remote address may make
	// a minute before the next ones are answered 429. Zero:
	// DefaultMaxFailures.
	MaxFailures int
	// Logger receives sign-ins, sign-outs and refusals (user names and
	// roles, never tokens, secrets or query values). Nil: discard.
	Logger *slog.Logger
	// Now is the console's clock. Nil: time.Now.
	Now func() time.Time
}

// Console is the web console's http.Handler, for paths under Prefix. Its
// sessions and sign-in links live in memory. It starts one goroutine per
// query an investigator asks, which ends with the query (each partner
// bounded by the node's deadline, the whole by runTimeout) or at Close.
type Console struct {
	cfg   Config
	b     Backend
	log   *slog.Logger
	mux   *http.ServeMux
	pages map[string]*template.Template

	sessions *sessions
	links    *links
	failures *failures
	runs     *runs
	key      []byte // HMAC key of the sign-in form's CSRF token
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.Backend == nil {
		return nil, errors.New("console: no backend")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
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
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, b: cfg.Backend, log: log.With("component", "console"), mux: http.NewServeMux(),
		pages: pages, sessions: newSessions(cfg.SessionTTL, cfg.Now), links: newLinks(cfg.Now),
		failures: newFailures(cfg.MaxFailures, cfg.Now), runs: newRuns(cfg.Now), key: make([]byte, 32)}
	rand.Read(c.key)
	c.routes()
	return c, nil
}

// Mount returns a handler that serves the console under Prefix and
// everything else with api: the one line node needs,
//
//	Handler: console.Mount(api, c)
func Mount(api http.Handler, c *Console) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle(Prefix, c)
	return mux
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No script at all, no inline style, nothing from elsewhere; the
	// pages are not to be framed or cached, and no other origin gets a
	// referrer. (A referrer to this origin stays: with none, a browser
	// sends "Origin: null" with a form, which sameOrigin refuses.)
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

// Link makes a one-time sign-in link for user, good for ttl (zero:
// DefaultLinkTTL), and returns its path under Prefix with the secret; the
// caller puts the replica's API URL before it. The console keeps only the
// secret's hash. It is the function behind `xborder ui-link --user U`: the
// caller has checked that its actor may manage users.
func (c *Console) Link(ctx context.Context, user string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = DefaultLinkTTL
	}
	if _, err := c.user(ctx, user); err != nil {
		return "", fmt.Errorf("make sign-in link: %w", err)
	}
	secret, err := c.links.add(user, ttl)
	if err != nil {
		return "", err
	}
	c.log.Info("sign-in link made", "user", user, "expires", c.cfg.Now().Add(ttl).UTC())
	return Prefix + "link?s=" + url.QueryEscape(secret), nil
}

// user returns the local user named name as it is now.
func (c *Console) user(ctx context.Context, name string) (httpapi.User, error) {
	us, err := c.b.Users(ctx)
	if err != nil {
		return httpapi.User{}, err
	}
	i := slices.IndexFunc(us, func(u httpapi.User) bool { return u.Name == name })
	if i < 0 {
		return httpapi.User{}, fmt.Errorf("no user %q: %w", name, httpapi.ErrNotFound)
	}
	return us[i], nil
}

// A page is one place of the console: who may see it, and what it says
// in the menu.
type page struct {
	path  string
	title string
	roles []string
	// action is the policy action (one without a kind) the page needs
	// besides the role; empty: none.
	action string
}

// Pages, in menu order. A role sees only its pages: the ones listing it.
var (
	pageQuery     = page{"/ui/query", "New query", []string{"investigator"}, ""}
	pageQueries   = page{"/ui/queries", "My queries", []string{"investigator"}, ""}
	pageFollowups = page{"/ui/followups", "My follow-ups", []string{"investigator"}, ""}
	pageApprovals = page{"/ui/approvals", "Pending approvals", []string{"approver"}, ""}
	pageLedger    = page{"/ui/ledger", "Ledger", []string{"auditor"}, "read_ledger"}
	pageCheckpts  = page{"/ui/checkpoints", "Checkpoints", []string{"auditor"}, "read_ledger"}
	pageAuditFups = page{"/ui/audit/followups", "Follow-ups", []string{"auditor"}, "read_ledger"}
	pageExport    = page{"/ui/export", "Export", []string{"auditor"}, "export"} // a form on Checkpoints, no menu item
	pageStatus    = page{"/ui/status", "Status", []string{"admin", "steward"}, ""}
	pagePolicy    = page{"/ui/policy", "Policy", []string{"admin", "steward"}, ""}
	pageInbox     = page{"/ui/inbox", "Follow-up inbox", []string{"liaison"}, ""}
	allPages      = []page{pageQuery, pageQueries, pageFollowups, pageApprovals, pageLedger, pageCheckpts, pageAuditFups, pageStatus, pagePolicy, pageInbox}
)

// home returns the first page of role, or false when it has none.
func home(role string) (page, bool) {
	for _, p := range allPages {
		if slices.Contains(p.roles, role) {
			return p, true
		}
	}
	return page{}, false
}

// request is a signed-in request: the user as the node knows it now, and
// the session.
type request struct {
	*http.Request
	user httpapi.User
	se   session
	id   string // session ID
}

func (c *Console) routes() {
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /ui/{$}", c.index)
	c.mux.HandleFunc("GET /ui/signin", c.signinForm)
	c.mux.HandleFunc("POST /ui/signin", c.signin)
	c.mux.HandleFunc("GET /ui/link", c.linkForm)
	c.mux.HandleFunc("POST /ui/link", c.linkSignin)
	c.mux.HandleFunc("POST /ui/signout", c.signout)

	c.get(pageQuery, pageQuery.path, c.queryForm)
	c.post(pageQuery, pageQuery.path, c.querySubmit)
	c.get(pageQuery, pageQuery.path+"/run/{id}", c.runPage)
	c.get(pageQueries, pageQueries.path, c.queriesPage)
	c.post(pageFollowups, "/ui/queries/{id}/followups", c.followupSubmit)
	c.get(pageFollowups, pageFollowups.path, c.followupsPage)
	c.get(pageFollowups, pageFollowups.path+"/{id}", c.followupPage)
	c.get(pageApprovals, pageApprovals.path, c.approvalsPage)
	c.post(pageApprovals, "/ui/approvals/{id}/approve", c.approve)
	c.post(pageApprovals, "/ui/approvals/{id}/refuse", c.refuse)
	c.get(pageLedger, pageLedger.path, c.ledgerPage)
	c.get(pageLedger, "/ui/ledger/{index}", c.entryPage)
	c.get(pageCheckpts, pageCheckpts.path, c.checkpointsPage)
	c.get(pageAuditFups, pageAuditFups.path, c.auditFollowupsPage)
	c.get(pageAuditFups, pageAuditFups.path+"/{id}", c.auditFollowupPage)
	c.post(pageExport, pageExport.path, c.export)
	c.get(pageStatus, pageStatus.path, c.statusPage)
	c.get(pagePolicy, pagePolicy.path, c.policyPage)
	c.get(pageInbox, pageInbox.path, c.inboxPage)
	c.post(pageInbox, pageInbox.path+"/{id}/answer", c.answerFollowup)
	c.mux.HandleFunc("/ui/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, nil, fmt.Errorf("no page %s: %w", r.URL.Path, httpapi.ErrNotFound))
	})
}

// get registers a page's GET route.
func (c *Console) get(p page, pattern string, fn func(w http.ResponseWriter, r *request) error) {
	c.mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, p, false, fn) })
}

// post registers a form's POST route: it needs the session's CSRF token.
func (c *Console) post(p page, pattern string, fn func(w http.ResponseWriter, r *request) error) {
	c.mux.HandleFunc("POST "+pattern, func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, p, true, fn) })
}

// errCSRF: a form came without the session's CSRF token (403).
var errCSRF = fmt.Errorf("the form's CSRF token is missing or belongs to another session: reload the page and send the form again: %w", httpapi.ErrForbidden)

// serve checks the session, the role, the policy and, for a form, the
// CSRF token and the origin, then runs fn.
func (c *Console) serve(w http.ResponseWriter, r *http.Request, p page, form bool, fn func(w http.ResponseWriter, r *request) error) {
	rq, ok := c.session(w, r)
	if !ok {
		return
	}
	if !slices.Contains(p.roles, rq.user.Role) {
		c.log.Info("page refused", "user", rq.user.Name, "role", rq.user.Role, "page", p.path)
		c.fail(w, r, rq, fmt.Errorf("the %s page is not for the %s role: %w", p.title, rq.user.Role, httpapi.ErrForbidden))
		return
	}
	if p.action != "" {
		if err := c.b.Authorize(rq.user, p.action); err != nil {
			c.log.Info("page refused", "user", rq.user.Name, "role", rq.user.Role, "page", p.path, "action", p.action)
			c.fail(w, r, rq, err)
			return
		}
	}
	if form {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		var err error
		if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
			// Held in memory (maxForm), never in a temporary file:
			// an uploaded list holds identifiers.
			err = r.ParseMultipartForm(maxForm + 1)
		} else {
			err = r.ParseForm()
		}
		if err != nil {
			c.fail(w, r, rq, fmt.Errorf("read form: %v: %w", err, httpapi.ErrBadRequest))
			return
		}
		if !sameOrigin(r) || !validCSRF(rq.se, r.PostForm.Get("csrf")) {
			c.log.Info("form refused: no valid CSRF token", "user", rq.user.Name, "page", p.path)
			c.fail(w, r, rq, errCSRF)
			return
		}
	}
	if err := fn(w, rq); err != nil {
		c.fail(w, r, rq, err)
	}
}

// session returns the signed-in request, or redirects to the sign-in page
// and returns false. The user must still exist with the session's role.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (*request, bool) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		c.toSignin(w, r)
		return nil, false
	}
	se, ok := c.sessions.get(ck.Value)
	if !ok {
		c.toSignin(w, r)
		return nil, false
	}
	u, err := c.user(r.Context(), se.User)
	if errors.Is(err, httpapi.ErrNotFound) || (err == nil && u.Role != se.Role) {
		c.sessions.endUser(se.User)
		c.toSignin(w, r)
		return nil, false
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return nil, false
	}
	return &request{Request: r, user: u, se: se, id: ck.Value}, true
}

func (c *Console) toSignin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		c.fail(w, r, nil, fmt.Errorf("not signed in, or the session expired: sign in again: %w", httpapi.ErrUnauthorized))
		return
	}
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

// sameOrigin refuses a form whose Origin header (when the browser sends
// one) names another origin than the request's host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	rq, ok := c.session(w, r)
	if !ok {
		return
	}
	p, ok := home(rq.user.Role)
	if !ok {
		c.fail(w, r, rq, fmt.Errorf("the console has no pages for the %s role: use the command line: %w", rq.user.Role, httpapi.ErrForbidden))
		return
	}
	http.Redirect(w, r, p.path, http.StatusSeeOther)
}

package console

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// preTTL is how long the sign-in form stays good.
const preTTL = 30 * time.Minute

// signinView is the sign-in page's data.
type signinView struct {
	CSRF   string
	Secret string // a link's secret, on the link page
	Error  string
}

// preSession sets a fresh pre-session cookie and returns the sign-in
// form's CSRF token for it.
func (c *Console) preSession(w http.ResponseWriter, r *http.Request) string {
	pre := newSecret()
	http.SetCookie(w, &http.Cookie{Name: preCookie, Value: pre, Path: Prefix, MaxAge: int(preTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	return preToken(c.key, pre)
}

// checkPre checks the sign-in form's CSRF token against the pre-session
// cookie.
func (c *Console) checkPre(r *http.Request) bool {
	ck, err := r.Cookie(preCookie)
	return err == nil && sameOrigin(r) && validPreToken(c.key, ck.Value, r.PostForm.Get("csrf"))
}

func (c *Console) signinForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "signin", "Sign in", nil, signinView{CSRF: c.preSession(w, r)})
}

// signin takes a pasted API token, authenticates it with the node and
// starts a session. The token is neither kept nor logged.
func (c *Console) signin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !c.checkPre(r) {
		c.log.Info("sign-in refused: no valid CSRF token", "remote", remoteHost(r))
		c.fail(w, r, nil, errCSRF)
		return
	}
	host := remoteHost(r)
	if wait := c.failures.wait(host); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+1)))
		c.fail(w, r, nil, fmt.Errorf("too many failed sign-ins from your address; retry in %s: %w", wait.Round(time.Second), httpapi.ErrTooMany))
		return
	}
	u, err := c.b.Authenticate(r.PostForm.Get("token"))
	if errors.Is(err, httpapi.ErrUnauthorized) {
		c.failures.fail(host)
		c.log.Warn("sign-in failed", "remote", host, "reason", "unknown token")
		c.render(w, r, http.StatusUnauthorized, "signin", "Sign in", nil,
			signinView{CSRF: c.preSession(w, r), Error: "No user holds this token. Paste the whole token from the token file an admin gave you."})
		return
	}
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.start(w, r, u, "token")
}

func (c *Console) linkForm(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "link", "Sign in with a link", nil,
		signinView{CSRF: c.preSession(w, r), Secret: r.URL.Query().Get("s")})
}

// linkSignin signs in with a one-time link. The link page asks for a
// press of its button first, so that a mail scanner or a browser's
// prefetch that follows the link does not use it up.
func (c *Console) linkSignin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil || !c.checkPre(r) {
		c.fail(w, r, nil, errCSRF)
		return
	}
	name, ok := c.links.use(r.PostForm.Get("s"))
	if !ok {
		c.log.Warn("sign-in failed", "remote", remoteHost(r), "reason", "unknown, used or expired link")
		c.fail(w, r, nil, fmt.Errorf("this sign-in link is unknown, used or expired: ask an admin for a new one (xborder ui-link --user NAME): %w", httpapi.ErrUnauthorized))
		return
	}
	u, err := c.user(r.Context(), name)
	if err != nil {
		c.fail(w, r, nil, err)
		return
	}
	c.start(w, r, u, "link")
}

// start begins a session for u and sends the browser to its home page.
func (c *Console) start(w http.ResponseWriter, r *http.Request, u httpapi.User, how string) {
	id, se := c.sessions.create(u.Name, u.Role)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: Prefix, Expires: se.Expires,
		MaxAge: int(c.cfg.SessionTTL.Seconds()), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: preCookie, Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.Info("signed in", "user", u.Name, "role", u.Role, "with", how)
	http.Redirect(w, r, Prefix, http.StatusSeeOther)
}

// signout ends the session (its form carries the CSRF token, so another
// site cannot sign a user out).
func (c *Console) signout(w http.ResponseWriter, r *http.Request) {
	rq, ok := c.session(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil || !sameOrigin(r) || !validCSRF(rq.se, r.PostForm.Get("csrf")) {
		c.fail(w, r, rq, errCSRF)
		return
	}
	c.sessions.end(rq.id)
	c.runs.endSession(secretKey(rq.id))
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.log.Info("signed out", "user", rq.user.Name)
	http.Redirect(w, r, "/ui/signin", http.StatusSeeOther)
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// failures counts failed sign-ins per remote address over a sliding
// minute. Tokens are long random secrets; the limit keeps the console
// from being a faster oracle than the API, which limits the same way.
type failures struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	times map[string][]time.Time
}

func newFailures(max int, now func() time.Time) *failures {
	return &failures{max: max, now: now, times: map[string][]time.Time{}}
}

// recent returns the failures of key in the last minute; the caller holds mu.
func (f *failures) recent(key string) []time.Time {
	cut := f.now().Add(-time.Minute)
	ts := f.times[key]
	for len(ts) > 0 && !ts[0].After(cut) {
		ts = ts[1:]
	}
	if len(ts) == 0 {
		delete(f.times, key)
	} else {
		f.times[key] = ts
	}
	return ts
}

// wait returns how long key must wait before it may try again (0: now).
func (f *failures) wait(key string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	ts := f.recent(key)
	if len(ts) < f.max {
		return 0
	}
	return ts[0].Add(time.Minute).Sub(f.now())
}

// fail records one failure of key.
func (f *failures) fail(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.times) > 1<<14 {
		for k := range f.times {
			f.recent(k)
		}
	}
	f.times[key] = append(f.recent(key), f.now())
}

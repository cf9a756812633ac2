package console

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// view is what every page's template gets: the frame (title, user, menu,
// the session's CSRF token for the sign-out form) and the page's own data.
type view struct {
	Title  string
	Agency string
	User   string
	Role   string
	Menu   []menuItem
	CSRF   string
	// Refresh, when not zero, makes the page reload itself after so
	// many seconds (a meta refresh: no script).
	Refresh int
	Data    any
}

type menuItem struct {
	Path, Title string
	Current     bool
}

// pageNames are the templates, each parsed with layout.html.
var pageNames = []string{"signin", "link", "error", "query", "result", "progress", "queries", "ledger", "entry", "checkpoints", "status", "policy", "inbox", "followups", "followup", "auditfollowups"}

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join": strings.Join,
	"hex":  func(b []byte) string { return fmt.Sprintf("%x", b) },
}

func parsePages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse page %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes page name with data, framed for rq's user (nil: signed out).
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, rq *request, data any) {
	c.renderRefresh(w, r, status, name, title, rq, data, 0)
}

// renderRefresh is render of a page that reloads itself after refresh
// seconds (0: never).
func (c *Console) renderRefresh(w http.ResponseWriter, r *http.Request, status int, name, title string, rq *request, data any, refresh int) {
	v := view{Title: title, Agency: c.cfg.Agency, Data: data, Refresh: refresh}
	if rq != nil {
		v.User, v.Role, v.CSRF = rq.user.Name, rq.user.Role, rq.se.CSRF
		for _, p := range allPages {
			if slices.Contains(p.roles, rq.user.Role) {
				v.Menu = append(v.Menu, menuItem{Path: p.path, Title: p.title,
					Current: r.URL.Path == p.path || strings.HasPrefix(r.URL.Path, p.path+"/")})
			}
		}
	}
	var buf bytes.Buffer
	if err := c.pages[name].Execute(&buf, v); err != nil {
		c.log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error; see the node's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errorView is the error page's data.
type errorView struct {
	Status  int
	Message string
}

// fail answers err as a page, with the status httpapi.StatusOf gives it:
// the one mapping of errors to statuses, the API's.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, rq *request, err error) {
	status, _ := httpapi.StatusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		c.log.Error("page failed", "path", r.URL.Path, "err", err)
		msg = "internal error; see the node's log"
	}
	c.render(w, r, status, "error", http.StatusText(status), rq, errorView{Status: status, Message: msg})
}

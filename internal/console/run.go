package console

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// Bounds of the queries the console runs in the background.
const (
	// runTTL is how long a finished query's result stays viewable (and
	// its lines in memory) before the console forgets it.
	runTTL = 15 * time.Minute
	// runTimeout bounds one query (each partner has its own, shorter
	// deadline in the node).
	runTimeout = 5 * time.Minute
	// maxRunsPerSession bounds the queries one session runs at once.
	maxRunsPerSession = 4
	// maxRuns bounds the runs held, running or finished, on the replica.
	maxRuns = 256
	// refreshSeconds is how often the progress page reloads itself.
	refreshSeconds = 2
)

// errBusy: the session runs too many queries at once, or the replica
// holds too many.
var errBusy = fmt.Errorf("too many queries are running: wait for one to finish, then ask again: %w", httpapi.ErrUnavailable)

// A run is one query the console runs in the background for a session,
// and its progress. lines are the investigator's lines in the order of
// the request's Values, to show the hits as them: held in memory only,
// until the run is forgotten (runTTL after it ends, or at sign-out), and
// never logged or put in the session.
type run struct {
	id      string // random, the progress page's URL
	session string // secretKey of the session that started it: no other sees it
	started time.Time

	mu       sync.Mutex
	queryID  string
	partners []string // asked, sorted; nil until the node says (or without a Progresser)
	parts    map[string]httpapi.PartnerResult
	lines    []string
	done     bool
	ended    time.Time
	res      httpapi.QueryResult
	err      error
}

// asking records the partners the node asks (Progresser).
func (r *run) asking(id string, partners []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queryID, r.partners = id, slices.Clone(partners)
}

// answered records one partner's part (Progresser).
func (r *run) answered(p httpapi.PartnerResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts[p.Agency] = p
}

// finish records the query's answer.
func (r *run) finish(res httpapi.QueryResult, err error, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res, r.err, r.done, r.ended = res, err, true, now
}

// runs holds the console's background queries.
type runs struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*run
	wg  sync.WaitGroup
	ctx context.Context // cancelled by Close: the queries still running end
	end context.CancelFunc
}

func newRuns(now func() time.Time) *runs {
	ctx, cancel := context.WithCancel(context.Background())
	return &runs{now: now, m: map[string]*run{}, ctx: ctx, end: cancel}
}

// start starts fn in the background as a run of session, holding lines,
// or returns errBusy.
func (rs *runs) start(session string, lines []string, fn func(ctx context.Context, r *run) (httpapi.QueryResult, error)) (*run, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.sweepLocked()
	mine := 0
	for _, r := range rs.m {
		r.mu.Lock()
		if r.session == session && !r.done {
			mine++
		}
		r.mu.Unlock()
	}
	if mine >= maxRunsPerSession || len(rs.m) >= maxRuns {
		return nil, errBusy
	}
	r := &run{id: newSecret(), session: session, started: rs.now(), parts: map[string]httpapi.PartnerResult{}, lines: lines}
	rs.m[r.id] = r
	rs.wg.Add(1)
	go func() {
		defer rs.wg.Done()
		ctx, cancel := context.WithTimeout(rs.ctx, runTimeout)
		defer cancel()
		res, err := fn(ctx, r)
		r.finish(res, err, rs.now())
	}()
	return r, nil
}

// get returns session's run id.
func (rs *runs) get(session, id string) (*run, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.sweepLocked()
	r, ok := rs.m[id]
	if !ok || r.session != session {
		return nil, false
	}
	return r, true
}

// endSession forgets the session's runs (sign-out): their lines go; a
// query still running finishes in the node, unseen.
func (rs *runs) endSession(session string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.m {
		if r.session == session {
			r.forget()
			delete(rs.m, id)
		}
	}
}

// sweepLocked forgets the runs that ended runTTL ago.
func (rs *runs) sweepLocked() {
	now := rs.now()
	for id, r := range rs.m {
		r.mu.Lock()
		old := r.done && now.Sub(r.ended) > runTTL
		r.mu.Unlock()
		if old {
			r.forget()
			delete(rs.m, id)
		}
	}
}

// forget drops the run's lines and result.
func (r *run) forget() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.lines)
	r.lines, r.res = nil, httpapi.QueryResult{}
}

// close cancels the running queries and waits for them.
func (rs *runs) close() {
	rs.end()
	rs.wg.Wait()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for id, r := range rs.m {
		r.forget()
		delete(rs.m, id)
	}
}

// snapshot is every run's lines, for the leak tests.
func (rs *runs) snapshot() [][]string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var out [][]string
	for _, r := range rs.m {
		r.mu.Lock()
		out = append(out, slices.Clone(r.lines))
		r.mu.Unlock()
	}
	return out
}

// progressView is the progress page's data.
type progressView struct {
	QueryID  string
	Started  time.Time
	Partners []partnerProgress
	Count    int    // partners answered
	Keep     string // how long the result is kept
}

type partnerProgress struct {
	Agency  string
	State   string // "asking", or the outcome
	Hits    int
	Millis  int64
	Reason  string
	Request string
}

// runPage shows a running query's progress, reloading itself every
// refreshSeconds, and its result once it is done.
func (c *Console) runPage(w http.ResponseWriter, r *request) error {
	rn, ok := c.runs.get(secretKey(r.id), r.PathValue("id"))
	if !ok {
		return fmt.Errorf("no such query on this page: its result is kept %v after it ends and until you sign out; ask again: %w", runTTL, httpapi.ErrNotFound)
	}
	rn.mu.Lock()
	defer rn.mu.Unlock()
	if rn.done {
		if rn.err != nil {
			return rn.err
		}
		v := newResultView(rn.res, rn.lines)
		_, v.FollowUp = c.b.(httpapi.FollowupOutBackend)
		c.render(w, r.Request, http.StatusOK, "result", "Query result", r, v)
		return nil
	}
	v := progressView{QueryID: rn.queryID, Started: rn.started, Count: len(rn.parts), Keep: fmt.Sprintf("%d minutes", int(runTTL.Minutes()))}
	for _, p := range rn.partners {
		pp := partnerProgress{Agency: p, State: "asking"}
		if a, ok := rn.parts[p]; ok {
			pp = partnerProgress{Agency: p, State: a.Outcome, Hits: a.HitCount, Millis: a.Millis, Reason: a.Reason, Request: a.RequestID}
		}
		v.Partners = append(v.Partners, pp)
	}
	c.renderRefresh(w, r.Request, http.StatusOK, "progress", "Query running", r, v, refreshSeconds)
	return nil
}

// runQuery is what a run does: the node's query, with its progress when
// the node reports it.
func (c *Console) runQuery(u httpapi.User, req httpapi.QueryRequest) func(ctx context.Context, r *run) (httpapi.QueryResult, error) {
	return func(ctx context.Context, r *run) (httpapi.QueryResult, error) {
		if pr, ok := c.b.(Progresser); ok {
			return pr.QueryProgress(ctx, u, req, r.asking, r.answered)
		}
		return c.b.Query(ctx, u, req)
	}
}

// Close cancels the queries the console runs in the background and waits
// for them to end.
func (c *Console) Close() error {
	c.runs.close()
	return nil
}

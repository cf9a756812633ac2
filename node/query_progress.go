package node

import (
	"context"

	"github.com/xborder/xborder/internal/console"
	"github.com/xborder/xborder/internal/httpapi"
)

// A query's progress, for the web console's progress page
// (console.Progresser): the querier tells the progress in ctx, if any,
// which partners it asks and each partner's part as it completes. The
// API's queries carry none.

var _ console.Progresser = (*backend)(nil)

// queryProgress receives a query's progress; its functions are called
// from the query's goroutines concurrently.
type queryProgress struct {
	asking   func(id string, partners []string)
	answered func(httpapi.PartnerResult)
}

type progressKey struct{}

// withProgress returns ctx carrying p.
func withProgress(ctx context.Context, p queryProgress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// progressOf returns the progress ctx carries, or one that drops it all.
func progressOf(ctx context.Context) queryProgress {
	p, _ := ctx.Value(progressKey{}).(queryProgress)
	if p.asking == nil {
		p.asking = func(string, []string) {}
	}
	if p.answered == nil {
		p.answered = func(httpapi.PartnerResult) {}
	}
	return p
}

// QueryProgress runs a query as Query does, telling asking the partners it
// asks before it asks them and answered each partner's part as it
// completes.
func (b *backend) QueryProgress(ctx context.Context, u httpapi.User, req httpapi.QueryRequest,
	asking func(id string, partners []string), answered func(httpapi.PartnerResult)) (httpapi.QueryResult, error) {
	return b.querier.Query(withProgress(ctx, queryProgress{asking: asking, answered: answered}), u, req)
}

package console

import (
	"context"

	"github.com/xborder/xborder/internal/console/consoletest"
	"github.com/xborder/xborder/internal/httpapi"
)

// apiBackend is what node's API backend implements today, plus the one
// method the console adds. That it satisfies Backend (checked when this
// file compiles) shows that every other method of Backend is the API's,
// with the API's signature: node implements EntryProof and passes its
// backend.
type apiBackend interface {
	httpapi.Backend
	httpapi.QueryBackend
	httpapi.DataBackend
	EntryProof(ctx context.Context, actor httpapi.User, purpose string, index, size uint64) (httpapi.EntryProof, error)
}

var _ Backend = apiBackend(nil)

// The fake node reports progress and its budgets and copies, as node does.
var (
	_ Progresser = (*consoletest.Fake)(nil)
	_ Operator   = (*consoletest.Fake)(nil)
	_ Refuser    = (*consoletest.Fake)(nil)

	_ httpapi.FollowupInboxBackend = (*consoletest.Fake)(nil)
	_ httpapi.FollowupOutBackend   = (*consoletest.Fake)(nil)
)

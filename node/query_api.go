package node

import (
	"context"

	"github.com/xborder/xborder/internal/httpapi"
)

// The query routes of the API (httpapi.QueryBackend).

var _ httpapi.QueryBackend = (*backend)(nil)

func (b *backend) Query(ctx context.Context, u httpapi.User, req httpapi.QueryRequest) (httpapi.QueryResult, error) {
	return b.querier.Query(ctx, u, req)
}

func (b *backend) Queries(ctx context.Context, u httpapi.User, pending bool) ([]httpapi.QueryRecord, error) {
	return b.querier.Queries(u, pending)
}

func (b *backend) QueryRecord(ctx context.Context, u httpapi.User, id string) (httpapi.QueryRecord, error) {
	return b.querier.QueryRecord(u, id)
}

func (b *backend) Approve(ctx context.Context, u httpapi.User, id string) (httpapi.QueryRecord, error) {
	return b.querier.Approve(ctx, u, id)
}

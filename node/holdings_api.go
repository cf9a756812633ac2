package node

import (
	"context"

	"github.com/xborder/xborder/internal/httpapi"
)

var _ httpapi.DataBackend = (*backend)(nil)

func (b *backend) BeginImport(ctx context.Context, u httpapi.User, req httpapi.BeginImport) (httpapi.Import, error) {
	return b.n().holdings.BeginImport(ctx, u, req)
}

func (b *backend) ImportRows(ctx context.Context, u httpapi.User, id string, rows []httpapi.Row) (httpapi.ImportRowsResult, error) {
	return b.n().holdings.ImportRows(ctx, u, id, rows)
}

func (b *backend) CommitImport(ctx context.Context, u httpapi.User, id string, c httpapi.CommitImport) (httpapi.ImportResult, error) {
	return b.n().holdings.CommitImport(ctx, u, id, c)
}

func (b *backend) RemoveRows(ctx context.Context, u httpapi.User, req httpapi.RemoveRows) (httpapi.RemoveResult, error) {
	return b.n().holdings.RemoveRows(ctx, u, req)
}

func (b *backend) DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error) {
	return b.n().holdings.DataStats(ctx, u)
}

func (b *backend) RotateKeys(ctx context.Context, u httpapi.User) (httpapi.Rotation, error) {
	return b.n().holdings.RotateKeys(ctx, u)
}

package node

import (
	"context"

	"github.com/xborder/xborder/internal/httpapi"
)

var _ httpapi.DataBackend = (*backend)(nil)

// holdingsRoutes are the holdings as the data routes use them: imports,
// removals, statistics and key rotation.
type holdingsRoutes interface {
	BeginImport(ctx context.Context, u httpapi.User, req httpapi.BeginImport) (httpapi.Import, error)
	ImportRows(ctx context.Context, u httpapi.User, id string, rows []httpapi.Row) (httpapi.ImportRowsResult, error)
	CommitImport(ctx context.Context, u httpapi.User, id string, c httpapi.CommitImport) (httpapi.ImportResult, error)
	RemoveRows(ctx context.Context, u httpapi.User, req httpapi.RemoveRows) (httpapi.RemoveResult, error)
	CompactData(ctx context.Context, u httpapi.User) (httpapi.CompactResult, error)
	DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error)
	RotateKeys(ctx context.Context, u httpapi.User) (httpapi.Rotation, error)
}

func (b *backend) BeginImport(ctx context.Context, u httpapi.User, req httpapi.BeginImport) (httpapi.Import, error) {
	return b.holdings.BeginImport(ctx, u, req)
}

func (b *backend) ImportRows(ctx context.Context, u httpapi.User, id string, rows []httpapi.Row) (httpapi.ImportRowsResult, error) {
	return b.holdings.ImportRows(ctx, u, id, rows)
}

func (b *backend) CommitImport(ctx context.Context, u httpapi.User, id string, c httpapi.CommitImport) (httpapi.ImportResult, error) {
	return b.holdings.CommitImport(ctx, u, id, c)
}

func (b *backend) RemoveRows(ctx context.Context, u httpapi.User, req httpapi.RemoveRows) (httpapi.RemoveResult, error) {
	return b.holdings.RemoveRows(ctx, u, req)
}

func (b *backend) CompactData(ctx context.Context, u httpapi.User) (httpapi.CompactResult, error) {
	return b.holdings.CompactData(ctx, u)
}

func (b *backend) DataStats(ctx context.Context, u httpapi.User) (httpapi.DataStats, error) {
	return b.holdings.DataStats(ctx, u)
}

func (b *backend) RotateKeys(ctx context.Context, u httpapi.User) (httpapi.Rotation, error) {
	return b.holdings.RotateKeys(ctx, u)
}

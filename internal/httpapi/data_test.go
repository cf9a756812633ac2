package httpapi

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// The stub backend serves the data routes too, so that the spec test
// checks that docs/api.yaml documents them.

func (s *stubBackend) BeginImport(ctx context.Context, u User, req BeginImport) (Import, error) {
	return Import{ID: "i1", Kind: req.Kind}, nil
}

func (s *stubBackend) ImportRows(ctx context.Context, u User, id string, rows []Row) (ImportRowsResult, error) {
	out := ImportRowsResult{}
	for _, r := range rows {
		if r.Value == "" {
			out.Invalid = append(out.Invalid, InvalidRow{Line: r.Line, Reason: "empty"})
		} else {
			out.Stored++
		}
	}
	return out, nil
}

func (s *stubBackend) CommitImport(ctx context.Context, u User, id string, c CommitImport) (ImportResult, error) {
	return ImportResult{ID: id, Invalid: c.Invalid}, nil
}

func (s *stubBackend) RemoveRows(ctx context.Context, u User, req RemoveRows) (RemoveResult, error) {
	return RemoveResult{Removed: len(req.Rows)}, nil
}

func (s *stubBackend) DataStats(ctx context.Context, u User) (DataStats, error) {
	return DataStats{Epoch: 1}, nil
}

func (s *stubBackend) CompactData(ctx context.Context, u User) (CompactResult, error) {
	return CompactResult{Compacted: []string{"r1"}}, nil
}

func (s *stubBackend) RotateKeys(ctx context.Context, u User) (Rotation, error) {
	return Rotation{Epoch: 1, NextEpoch: 2}, nil
}

func TestDataRoutes(t *testing.T) {
	srv := httptest.NewServer(New(Config{Backend: &stubBackend{}}))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Token: "good"}
	ctx := context.Background()
	im, err := c.BeginImport(ctx, BeginImport{Kind: "phone"})
	if err != nil || im.ID != "i1" {
		t.Fatalf("BeginImport = %+v, %v", im, err)
	}
	rr, err := c.ImportRows(ctx, im.ID, []Row{{Line: 2, Value: "x"}, {Line: 3}})
	if err != nil || rr.Stored != 1 || len(rr.Invalid) != 1 || rr.Invalid[0].Line != 3 {
		t.Errorf("ImportRows = %+v, %v; want 1 stored, line 3 invalid", rr, err)
	}
	res, err := c.CommitImport(ctx, im.ID, CommitImport{Invalid: 2})
	if err != nil || res.Invalid != 2 {
		t.Errorf("CommitImport = %+v, %v", res, err)
	}
	if rm, err := c.RemoveRows(ctx, RemoveRows{Kind: "phone", Rows: []Row{{Line: 2, Value: "x"}}}); err != nil || rm.Removed != 1 {
		t.Errorf("RemoveRows = %+v, %v", rm, err)
	}
	if st, err := c.DataStats(ctx); err != nil || st.Epoch != 1 {
		t.Errorf("DataStats = %+v, %v", st, err)
	}
	if r, err := c.RotateKeys(ctx); err != nil || r.NextEpoch != 2 {
		t.Errorf("RotateKeys = %+v, %v", r, err)
	}
	// Unknown fields are refused.
	code, body := serve(t, New(Config{Backend: &stubBackend{}}), "POST", "/v1/data/imports", "good")
	if code != 400 {
		t.Errorf("POST /v1/data/imports without a body = %d %s; want 400", code, body)
	}
	var e map[string]any
	_ = json.Unmarshal([]byte(body), &e)
	if !strings.Contains(body, "error") {
		t.Errorf("error body %q", body)
	}
}

//go:build !chaos

package node

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// chaosHooks is what a replica's data directory changes in it at start:
// where it dials other replicas and partner replicas (RoutesFile, every
// build) and, built with the chaos tag only, its clock (node/chaos_on.go).
type chaosHooks struct {
	raft map[string]string // RoutesFile's Raft routes
}

// loadChaos returns the hooks of the data directory dir: its routes; no
// clock offset without the chaos build tag.
func loadChaos(dir string, log *slog.Logger) (chaosHooks, error) {
	via, err := loadRoutes(dir, log)
	return chaosHooks{raft: via}, err
}

func (h chaosHooks) transport(l raft.StreamLayer) raft.StreamLayer { return routed(l, h.raft) }

func (chaosHooks) clock(now func() time.Time) func() time.Time { return now }

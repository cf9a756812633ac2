//go:build !chaos

package node

import (
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// chaosHooks is what `testnet chaos` changes in a replica built with the
// chaos tag (node/chaos_on.go): where it dials other replicas and partner
// replicas, and its clock. Built without the tag it changes nothing.
type chaosHooks struct{}

// loadChaos returns the hooks of the data directory dir: none without the
// chaos build tag.
func loadChaos(string, *slog.Logger) (chaosHooks, error) { return chaosHooks{}, nil }

func (chaosHooks) transport(l raft.StreamLayer) raft.StreamLayer { return l }

func (chaosHooks) clock(now func() time.Time) func() time.Time { return now }

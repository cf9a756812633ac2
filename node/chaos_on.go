//go:build chaos

package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"
)

// ChaosFile is the file of a data directory through which `testnet chaos`
// (a binary built with the chaos tag) skews the replica's clock. A binary
// built without the tag never reads it. (The links go through the chaos
// proxies by RoutesFile, in every build.)
const ChaosFile = "chaos.json"

// ChaosConfig is ChaosFile.
type ChaosConfig struct {
	// ClockOffset is added to every reading of this replica's clock (Go
	// duration).
	ClockOffset string `json:"clock_offset"`
}

// chaosHooks is what a replica's data directory changes in it at start:
// where it dials other replicas and partner replicas (RoutesFile) and,
// built with the chaos tag, its clock (ChaosFile).
type chaosHooks struct {
	raft   map[string]string // RoutesFile's Raft routes
	offset time.Duration
}

// loadChaos reads the routes of dir and DIR/chaos.json, if there is one.
func loadChaos(dir string, log *slog.Logger) (chaosHooks, error) {
	via, err := loadRoutes(dir, log)
	if err != nil {
		return chaosHooks{}, err
	}
	h := chaosHooks{raft: via}
	b, err := os.ReadFile(filepath.Join(dir, ChaosFile))
	if errors.Is(err, os.ErrNotExist) {
		return h, nil
	}
	if err != nil {
		return chaosHooks{}, fmt.Errorf("chaos: %w", err)
	}
	var c ChaosConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return chaosHooks{}, fmt.Errorf("chaos: %s: %w", ChaosFile, err)
	}
	if c.ClockOffset != "" {
		if h.offset, err = time.ParseDuration(c.ClockOffset); err != nil {
			return chaosHooks{}, fmt.Errorf("chaos: clock_offset: %w", err)
		}
	}
	log.Warn("chaos build: clock skewed", "clock_offset", h.offset.String())
	return h, nil
}

func (h chaosHooks) transport(l raft.StreamLayer) raft.StreamLayer { return routed(l, h.raft) }

func (h chaosHooks) clock(now func() time.Time) func() time.Time {
	if h.offset == 0 {
		return now
	}
	return func() time.Time { return now().Add(h.offset) }
}

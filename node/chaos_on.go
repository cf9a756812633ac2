//go:build chaos

package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/xborder/xborder/ledger/tlsnet"
	"github.com/xborder/xborder/node/host"
)

// ChaosFile is the file of a data directory through which `testnet chaos`
// (a binary built with the chaos tag) routes the replica's links through
// its proxies and skews its clock. A binary built without the tag never
// reads it.
const ChaosFile = "chaos.json"

// chaosConfig is ChaosFile.
type chaosConfig struct {
	// Raft maps the transport address of another replica to the address
	// this replica dials instead (its proxy of the link).
	Raft map[string]string `json:"raft"`
	// P2P maps a partner replica's multiaddr to the one this replica
	// dials instead; the partner's own address is then never dialled.
	P2P map[string]string `json:"p2p"`
	// ClockOffset is added to every reading of this replica's clock (Go
	// duration).
	ClockOffset string `json:"clock_offset"`
}

// chaosHooks is what `testnet chaos` changes in a replica built with the
// chaos tag: where it dials other replicas and partner replicas, and its
// clock.
type chaosHooks struct {
	raft   map[string]string
	offset time.Duration
}

// loadChaos reads DIR/chaos.json, if there is one, and hands the libp2p
// address map to the host package.
func loadChaos(dir string, log *slog.Logger) (chaosHooks, error) {
	b, err := os.ReadFile(filepath.Join(dir, ChaosFile))
	if errors.Is(err, os.ErrNotExist) {
		return chaosHooks{}, nil
	}
	if err != nil {
		return chaosHooks{}, fmt.Errorf("chaos: %w", err)
	}
	var c chaosConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return chaosHooks{}, fmt.Errorf("chaos: %s: %w", ChaosFile, err)
	}
	h := chaosHooks{raft: c.Raft}
	if c.ClockOffset != "" {
		if h.offset, err = time.ParseDuration(c.ClockOffset); err != nil {
			return chaosHooks{}, fmt.Errorf("chaos: clock_offset: %w", err)
		}
	}
	host.SetDialVia(c.P2P)
	log.Warn("chaos build: links routed through proxies", "raft", len(c.Raft), "p2p", len(c.P2P), "clock_offset", h.offset.String())
	return h, nil
}

// viaLayer dials another replica at its proxy.
type viaLayer struct {
	*tlsnet.Layer
	via map[string]string
}

func (l viaLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if p, ok := l.via[string(a)]; ok {
		a = raft.ServerAddress(p)
	}
	return l.Layer.Dial(a, timeout)
}

func (h chaosHooks) transport(l raft.StreamLayer) raft.StreamLayer {
	tl, ok := l.(*tlsnet.Layer)
	if !ok || len(h.raft) == 0 {
		return l
	}
	return viaLayer{Layer: tl, via: h.raft}
}

func (h chaosHooks) clock(now func() time.Time) func() time.Time {
	if h.offset == 0 {
		return now
	}
	return func() time.Time { return now().Add(h.offset) }
}

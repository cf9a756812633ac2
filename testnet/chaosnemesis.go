package testnet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Fault kinds of the nemesis.
const (
	FaultPartitionLeader   = "partition-leader"   // the audit leader cut from its group's Raft links: it is the minority
	FaultPartitionFollower = "partition-follower" // a follower cut from its group: the majority keeps its leader
	FaultCutPartner        = "cut-partner"        // every libp2p link between two agencies cut
	FaultLatency           = "latency"            // 300 ms ± 100 on every link of one agency, Raft and libp2p
	FaultReset             = "reset"              // every connection of one replica reset as soon as data flows
	FaultKill              = "kill"               // SIGKILL, leaders favoured, and a restart when the fault heals
	FaultPause             = "pause"              // SIGSTOP for longer than the election timeout, then SIGCONT
	FaultClock             = "clock"              // restarted with its clock 90 s ahead (chaos build only), then restarted right
)

// networkFaults need the proxies in the path, so a binary built with the
// chaos tag.
var networkFaults = map[string]bool{FaultPartitionLeader: true, FaultPartitionFollower: true, FaultCutPartner: true,
	FaultLatency: true, FaultReset: true}

// FaultKinds lists every fault kind in the order the schedule draws from.
var FaultKinds = []string{FaultPartitionLeader, FaultPartitionFollower, FaultCutPartner, FaultLatency, FaultReset,
	FaultKill, FaultPause, FaultClock}

// Fault is one fault of the schedule: planned from the seed, then
// filled in as it runs.
type Fault struct {
	N      int           `json:"n"`
	Kind   string        `json:"kind"`
	Agency string        `json:"agency"`
	Leader bool          `json:"leader,omitempty"` // aimed at the agency's audit leader
	Pick   int           `json:"pick"`             // which other replica or partner, modulo their number
	Hold   time.Duration `json:"hold_ns"`
	Gap    time.Duration `json:"gap_ns"` // quiet time after it heals
	// Filled in when it runs.
	Target  string  `json:"target,omitempty"` // replica or partner agency it hit
	Start   float64 `json:"start_ms,omitempty"`
	Healed  float64 `json:"healed_ms,omitempty"`
	Skipped string  `json:"skipped,omitempty"`
	Note    string  `json:"note,omitempty"`
}

func (f *Fault) String() string {
	who := f.Agency
	if f.Leader {
		who += " leader"
	}
	return fmt.Sprintf("#%d %s %s (pick %d) for %s, then %s quiet", f.N, f.Kind, who, f.Pick, f.Hold, f.Gap)
}

// Schedule draws the nemesis's faults of kinds for a run of d from seed: one
// fault at a time, each held 3 to 8 seconds (a pause 3 to 6, always
// longer than Raft's election timeout), then 2 to 5 seconds of quiet. The
// same seed and agencies give the same schedule.
func Schedule(seed uint64, kinds, agencies []string, replicas int, d time.Duration) []*Fault {
	rng := rand.New(rand.NewPCG(seed, 0x6e656d65736973))
	var out []*Fault
	if replicas < 3 {
		// One replica has no group to be cut from, nor a majority.
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return strings.HasPrefix(k, "partition") })
	}
	if len(agencies) < 2 {
		kinds = slices.DeleteFunc(slices.Clone(kinds), func(k string) bool { return k == FaultCutPartner })
	}
	for t := time.Duration(0); t < d && len(kinds) > 0; {
		f := &Fault{N: len(out) + 1, Kind: kinds[rng.IntN(len(kinds))], Agency: agencies[rng.IntN(len(agencies))],
			Pick: rng.IntN(16), Hold: time.Duration(3000+rng.IntN(5000)) * time.Millisecond,
			Gap: time.Duration(2000+rng.IntN(3000)) * time.Millisecond}
		switch f.Kind {
		case FaultPartitionLeader:
			f.Leader = true
		case FaultKill, FaultPause, FaultClock:
			f.Leader = rng.IntN(3) < 2 // leaders favoured
		}
		if f.Kind == FaultPause {
			f.Hold = time.Duration(3000+rng.IntN(3000)) * time.Millisecond
		}
		out = append(out, f)
		t += f.Hold + f.Gap
	}
	return out
}

// nemesis runs a schedule against a federation.
type nemesis struct {
	net     *Net
	px      *proxies
	hist    *history
	network bool // the proxies are in the path
	clock   bool // clock faults possible (chaos build)
	log     func(format string, args ...any)
}

// run plays the schedule until it ends or ctx does; every fault is healed
// before the next begins, and before run returns.
func (nm *nemesis) run(ctx context.Context, sched []*Fault) {
	for _, f := range sched {
		if ctx.Err() != nil {
			return
		}
		nm.play(ctx, f)
		sleep(ctx, f.Gap)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// play injects one fault, holds it and heals it.
func (nm *nemesis) play(ctx context.Context, f *Fault) {
	a := nm.net.Agency(f.Agency)
	switch {
	case networkFaults[f.Kind] && !nm.network:
		f.Skipped = "no proxies in the path"
	case f.Kind == FaultClock && !nm.clock:
		f.Skipped = "clock faults need the chaos build tag"
	}
	if f.Skipped != "" {
		return
	}
	target := nm.pickReplica(ctx, a, f)
	f.Start = nm.hist.ms(time.Now())
	var heal func() error
	var err error
	switch f.Kind {
	case FaultPartitionLeader, FaultPartitionFollower:
		f.Target = target.ID
		cut := func(l *link) bool { return l.kind == "raft" && (l.from == target || l.to == target) }
		_, err = nm.px.setEnabled(cut, false)
		heal = func() error { _, err := nm.px.setEnabled(cut, true); return err }
	case FaultCutPartner:
		var others []*AgencyNode
		for _, b := range nm.net.Agencies {
			if b != a {
				others = append(others, b)
			}
		}
		b := others[f.Pick%len(others)]
		f.Target = b.Code
		cut := func(l *link) bool {
			return l.kind == "p2p" && (l.fromAg == a.Code && l.toAg == b.Code || l.fromAg == b.Code && l.toAg == a.Code)
		}
		_, err = nm.px.setEnabled(cut, false)
		heal = func() error { _, err := nm.px.setEnabled(cut, true); return err }
	case FaultLatency:
		f.Target = "all links"
		sel := func(l *link) bool { return l.fromAg == a.Code || l.toAg == a.Code }
		_, err = nm.px.addToxic(sel, `{"name":"lat_down","type":"latency","stream":"downstream","attributes":{"latency":300,"jitter":100}}`)
		if err == nil {
			_, err = nm.px.addToxic(sel, `{"name":"lat_up","type":"latency","stream":"upstream","attributes":{"latency":300,"jitter":100}}`)
		}
		heal = nm.px.heal
	case FaultReset:
		f.Target = target.ID
		sel := func(l *link) bool { return l.from == target || l.to == target }
		_, err = nm.px.addToxic(sel, `{"name":"reset_down","type":"reset_peer","stream":"downstream","attributes":{"timeout":0}}`)
		if err == nil {
			_, err = nm.px.addToxic(sel, `{"name":"reset_up","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`)
		}
		heal = nm.px.heal
	case FaultKill:
		f.Target = target.ID
		target.Kill()
		heal = func() error { return nm.restart(a, target) }
	case FaultPause:
		f.Target = target.ID
		err = target.Signal(syscall.SIGSTOP)
		heal = func() error { return target.Signal(syscall.SIGCONT) }
	case FaultClock:
		f.Target = target.ID
		err = nm.restartWithClock(a, target, "90s")
		heal = func() error { return nm.restartWithClock(a, target, "") }
	}
	nm.log("%s: %s %s/%s", fmtMs(f.Start), f.Kind, a.Code, f.Target)
	if err != nil {
		f.Note = err.Error()
	}
	sleep(ctx, f.Hold)
	if heal != nil {
		if err := heal(); err != nil {
			f.Note = strings.TrimSpace(f.Note + "; heal: " + err.Error())
		}
	}
	f.Healed = nm.hist.ms(time.Now())
	nm.log("%s: healed #%d %s", fmtMs(f.Healed), f.N, f.Kind)
}

func fmtMs(ms float64) string { return fmt.Sprintf("%8.1fs", ms/1000) }

// pickReplica returns the fault's replica: the agency's audit leader when
// the fault aims at it (any replica when none is known), else one of the
// others.
func (nm *nemesis) pickReplica(ctx context.Context, a *AgencyNode, f *Fault) *Replica {
	lead := leaderOf(ctx, a)
	if f.Leader && lead != nil {
		return lead
	}
	var others []*Replica
	for _, r := range a.Replicas {
		if r != lead {
			others = append(others, r)
		}
	}
	if len(others) == 0 {
		return a.Replicas[0]
	}
	return others[f.Pick%len(others)]
}

// leaderOf returns the replica that a running replica of a names audit
// leader with a quorum, or nil.
func leaderOf(ctx context.Context, a *AgencyNode) *Replica {
	for i, r := range a.Replicas {
		if !r.Running() {
			continue
		}
		c, err := a.Client(i, "admin")
		if err != nil {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := c.Status(sctx)
		cancel()
		if err != nil {
			continue
		}
		for _, g := range st.Groups {
			if g.Name != "audit" || g.Leader == "" || !g.Quorum {
				continue
			}
			for _, x := range a.Replicas {
				if x.ID == g.Leader && x.Running() {
					return x
				}
			}
		}
	}
	return nil
}

// restart starts a killed replica again; it waits until it is ready.
func (nm *nemesis) restart(a *AgencyNode, r *Replica) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return nm.net.Restart(ctx, a, r)
}

// restartWithClock restarts r with its clock offset by off ("" for none).
func (nm *nemesis) restartWithClock(a *AgencyNode, r *Replica, off string) error {
	if err := writeClockFile(r.Dir, clockFile{ClockOffset: off}); err != nil {
		return err
	}
	nm.net.Stop(r)
	return nm.restart(a, r)
}

package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// Record namespaces of witnessing (audit group).
const (
	// nsWitness: key: a partner's ledger origin; value: the checkpoint
	// note this node's witness last cosigned for it.
	nsWitness = "witness"
	// nsWitnessEvidence: key: hex SHA-256 of an alarm (exchange.Alarm
	// Digest); value: witnessEvidence JSON.
	nsWitnessEvidence = "witness-evidence"
	// nsCosigned: key "checkpoint": this ledger's newest checkpoint with
	// the cosignatures its partners' witnesses returned.
	nsCosigned = "cosigned"
)

// witnessKey derives the agency's witness key from its agency key: a key
// of its own (cosignature/v1 does not commit to the signer's name, so the
// agency key must not sign both), that every replica holding the agency
// key can compute without another secret file.
func witnessKey(agency ed25519.PrivateKey) ed25519.PrivateKey {
	h := sha256.Sum256(append([]byte("xborder/v1/witness-key\x00"), agency.Seed()...))
	return ed25519.NewKeyFromSeed(h[:])
}

// witnessPins gives the pinned partners' cards (*cards).
type witnessPins interface {
	pinned(agency string) (*card.Card, bool)
	Pins() map[string]*card.Card
}

// witnessEvidence is what an alarm keeps: both checkpoints as signed notes,
// and where the refused one came from.
type witnessEvidence struct {
	Origin  string   `json:"origin"`
	Reason  string   `json:"reason"`
	Side    string   `json:"side"` // "witness": this node's witness refused a partner's checkpoint; "log": a witness contradicts this ledger
	Peer    string   `json:"peer"`
	Partner string   `json:"partner"`
	OldSize uint64   `json:"old_size"`
	OldRoot string   `json:"old_root"`
	NewSize uint64   `json:"new_size"`
	NewRoot string   `json:"new_root"`
	OldNote string   `json:"old_note"`
	NewNote string   `json:"new_note"`
	Proof   []string `json:"proof,omitempty"`
}

// witnessState is the witness's replicated memory and its alarms
// (exchange.WitnessState, exchange.WitnessLogs): the newest cosigned
// checkpoint per origin is a record of the audit group, replaced only by a
// Swap that holds while nothing changed, so no restart or failover rolls
// it back; an alarm is an entry (type witness_alarm) and its evidence a
// record, written once per split view. It starts no goroutine.
type witnessState struct {
	audit  *raftGroup
	pins   witnessPins
	alarms *prometheus.CounterVec
	log    *slog.Logger
}

var (
	_ exchange.WitnessState = (*witnessState)(nil)
	_ exchange.WitnessLogs  = (*witnessState)(nil)
)

func newWitnessState(audit *raftGroup, pins witnessPins, reg prometheus.Registerer, log *slog.Logger) *witnessState {
	a := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xborder_witness_alarms_total",
		Help: "Split views recorded, by side: witness (a partner's checkpoint this node's witness refused) or log (a witness contradicts this ledger).",
	}, []string{"side"})
	if reg != nil {
		reg.MustRegister(a)
	}
	return &witnessState{audit: audit, pins: pins, alarms: a, log: log}
}

// LogKey returns the verifier key of a pinned partner's ledger origin.
func (s *witnessState) LogKey(origin string) (string, error) {
	agency, ok := strings.CutPrefix(origin, exchange.WitnessOriginPrefix)
	if !ok {
		return "", fmt.Errorf("origin %q: %w", origin, exchange.ErrUnknownLog)
	}
	pc, ok := s.pins.pinned(agency)
	if !ok {
		return "", fmt.Errorf("origin %q: not a pinned partner: %w", origin, exchange.ErrUnknownLog)
	}
	return format.VerifierKey(origin, pc.Key)
}

// Latest returns the checkpoint last cosigned for origin, or nil. It reads
// after a linearizable barrier: a replica that has just become leader, or
// a follower that lags, answers from every Swap committed before the
// request, never from an older state (a witness that answered from a stale
// state would ask the log for a consistency proof from a size it has
// already passed, or report a size it no longer holds).
func (s *witnessState) Latest(ctx context.Context, origin string) ([]byte, error) {
	if err := s.audit.Linearize(ledger.FailFast(ctx)); err != nil {
		return nil, fmt.Errorf("witness state of %s: %w", origin, err)
	}
	b, err := s.audit.Get(nsWitness, origin)
	if errors.Is(err, ledger.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// Swap replaces the checkpoint of origin, committed by a quorum.
func (s *witnessState) Swap(ctx context.Context, origin string, old, next []byte) error {
	var d ledger.Digest
	if old != nil {
		d = ledger.ValueDigest(old)
	}
	_, err := s.audit.Swap(ctx, nsWitness, origin, d, next)
	if errors.Is(err, ledger.ErrConflict) {
		return fmt.Errorf("%w: %w", exchange.ErrWitnessConflict, err)
	}
	return err
}

// Alarm records a split view this node's witness refused.
func (s *witnessState) Alarm(ctx context.Context, a *exchange.Alarm) error {
	return s.record(ctx, "witness", a)
}

// record keeps the evidence of a (once per digest), appends the
// witness_alarm entry and counts it.
func (s *witnessState) record(ctx context.Context, side string, a *exchange.Alarm) error {
	d := a.Digest()
	if side == "log" {
		// What a witness holds of this ledger, once per witness and
		// checkpoint, however often this ledger grows meanwhile.
		d = sha256.Sum256(fmt.Appendf(nil, "log\x00%s\x00%s\x00%s\x00%d", a.From.Agency, a.Reason, exchange.NoteText(a.OldNote), a.OldSize))
	}
	ev := witnessEvidence{Origin: a.Origin, Reason: a.Reason, Side: side, Peer: string(a.From.ID), Partner: a.From.Agency,
		OldSize: a.OldSize, OldRoot: b64(a.OldRoot[:]), NewSize: a.NewSize, NewRoot: b64(a.NewRoot[:]),
		OldNote: string(a.OldNote), NewNote: string(a.NewNote)}
	for _, h := range a.Proof {
		ev.Proof = append(ev.Proof, b64(h[:]))
	}
	v, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	switch _, err := s.audit.Swap(ctx, nsWitnessEvidence, hex.EncodeToString(d[:]), ledger.Digest{}, v); {
	case errors.Is(err, ledger.ErrConflict):
		return nil // recorded before
	case err != nil:
		return fmt.Errorf("record witness alarm: %w", err)
	}
	agency, _ := strings.CutPrefix(a.Origin, exchange.WitnessOriginPrefix)
	if side == "log" {
		agency = a.From.Agency // the witness that contradicts us
	}
	if _, err := s.audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeWitness, Outcome: ledger.OutcomeDenied, RequestID: a.Origin, Partner: agency,
			PaddedSize: a.OldSize, Count: a.NewSize, Digest: d},
		Body: ledger.Body{Actor: "witness", Purpose: fmt.Sprintf("%s split view of %s: %s; size %d root %s against size %d root %s",
			side, a.Origin, a.Reason, a.OldSize, b64(a.OldRoot[:]), a.NewSize, b64(a.NewRoot[:]))},
	}); err != nil {
		return fmt.Errorf("record witness alarm: %w", err)
	}
	s.alarms.WithLabelValues(side).Inc()
	s.log.Error("witness alarm recorded", "side", side, "origin", a.Origin, "partner", agency, "reason", a.Reason,
		"old_size", a.OldSize, "new_size", a.NewSize)
	return nil
}

// status counts the alarms recorded (every replica, since the start of the
// ledger) and names the newest cosigned checkpoint of this ledger.
func (s *witnessState) status(logKey string, witnesses []string) *httpapi.WitnessStatus {
	st := &httpapi.WitnessStatus{}
	_ = s.audit.Scan(nsWitnessEvidence, "", func(_ string, v []byte) error {
		var ev witnessEvidence
		if json.Unmarshal(v, &ev) == nil {
			st.Alarms++
			st.LastAlarm = fmt.Sprintf("%s: %s (%s side, sizes %d and %d)", ev.Origin, ev.Reason, ev.Side, ev.OldSize, ev.NewSize)
		}
		return nil
	})
	if b, err := s.audit.Get(nsCosigned, "checkpoint"); err == nil {
		if cp, err := format.ParseCheckpoint(b, logKey); err == nil {
			st.CosignedSize = cp.Size
			if ok, err := format.Cosigners(b, logKey, witnesses); err == nil {
				st.Cosignatures = len(ok)
			}
		}
	}
	return st
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// rootOf returns the root a checkpoint names, for messages.
func rootOf(h tlog.Hash) string { return b64(h[:]) }

// witnessingConfig is what witnessing is built from.
type witnessingConfig struct {
	Agency   string
	Key      ed25519.PrivateKey // the agency key; the witness key derives from it
	Audit    *raftGroup
	Pins     witnessPins
	Client   witnessClient
	Opener   exchange.Opener
	Host     protoHost // where ProtoWitness is served
	Registry prometheus.Registerer
	Interval time.Duration // how often cosignatures are collected; zero: one minute
	// Throttled counts a witness stream reset because its partner is over
	// its refusal budget (exchange.WitnessConfig.Throttled); nil: none.
	Throttled func(from exchange.Peer, proto string)
	Log       *slog.Logger
}

// witnessing is this node's witness of its partners' ledgers (served on
// ProtoWitness by every replica, its state in the audit group) and the
// collector of its partners' cosignatures on its own ledger (on the audit
// leader). Close ends the collector's loop.
type witnessing struct {
	state  *witnessState
	svc    *exchange.Witness
	coll   *collector
	agency string
	audit  *raftGroup
	pins   witnessPins
}

func newWitnessing(cfg witnessingConfig) (*witnessing, error) {
	cos, err := exchange.NewCosigner(cfg.Agency, witnessKey(cfg.Key))
	if err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	st := newWitnessState(cfg.Audit, cfg.Pins, cfg.Registry, cfg.Log)
	svc, err := exchange.NewWitness(exchange.WitnessConfig{Cosigner: cos, Logs: st, State: st,
		Throttled: cfg.Throttled, Logger: cfg.Log})
	if err != nil {
		return nil, fmt.Errorf("open node: %w", err)
	}
	cfg.Host.Handle(exchange.ProtoWitness, svc.Handle)
	coll := newCollector(collectorConfig{Agency: cfg.Agency, Audit: cfg.Audit, Pins: cfg.Pins, Client: cfg.Client,
		Opener: cfg.Opener, State: st, Leader: func() bool { return cfg.Audit.Status().State == "Leader" },
		Interval: cfg.Interval, Log: cfg.Log})
	coll.Start()
	return &witnessing{state: st, svc: svc, coll: coll, agency: cfg.Agency, audit: cfg.Audit, pins: cfg.Pins}, nil
}

// Close stops the collector; nil-safe.
func (w *witnessing) Close() error {
	if w == nil {
		return nil
	}
	return w.coll.Close()
}

// status is the witnessing part of the replica's status.
func (w *witnessing) status() *httpapi.WitnessStatus {
	ws := w.coll.witnesses()
	st := w.state.status(w.audit.VerifierKey(), witnessKeys(ws))
	st.Witnesses = len(ws)
	return st
}

// cosignExport asks every partner's witness to cosign an export's
// checkpoint and returns its note with the cosignatures, within 15 s.
func (w *witnessing) cosignExport(ctx context.Context, cp ledger.Checkpoint) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return w.coll.Cosign(ctx, cp)
}

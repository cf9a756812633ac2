package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// policyRecord holds the files of one policy version in the audit group's
// records (ns "policy", key the version).
type policyRecord struct {
	PolicyName string `json:"policy_name"`
	Policy     []byte `json:"policy"`
	LimitsName string `json:"limits_name"`
	Limits     []byte `json:"limits"`
}

// policyGauge is the metric that names the policy version in force
// (*metrics).
type policyGauge interface {
	setPolicy(version string)
}

// policySource is the policy in force on this replica: the version the
// audit group's ledger says is in force, parsed from the files recorded
// under it. ApplyPolicy records new files through the audit group;
// refreshPolicy catches up with the ledger, and is called by the node's
// watch loop and by a decision that finds the ledger ahead. It owns only
// the parsed set and starts no goroutine.
type policySource struct {
	audit *raftGroup
	gauge policyGauge
	log   *slog.Logger
	cur   atomic.Pointer[policy.Set]
}

// newPolicySource returns a source that holds policy.Default until the
// ledger names a version.
func newPolicySource(audit *raftGroup, gauge policyGauge, log *slog.Logger) *policySource {
	p := &policySource{audit: audit, gauge: gauge, log: log}
	p.cur.Store(policy.Default())
	return p
}

// Policy returns the policy in force on this replica.
func (p *policySource) Policy() *policy.Set { return p.cur.Load() }

// filesDigest is the digest a policy entry carries: SHA-256 over both files,
// each prefixed by its length.
func filesDigest(f policy.Files) ledger.Digest {
	h := sha256.New()
	for _, b := range [][]byte{f.Policy, f.Limits} {
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	var d ledger.Digest
	h.Sum(d[:0])
	return d
}

// ApplyPolicy parses both files and, when they are valid, records them and
// commits a policy entry with their version, which puts them in force on
// every replica (each one watches the ledger's policy version). A bad file
// is refused with a *policy.FileError (file:line: reason), and files under
// which managers finds no user who could manage_policy with
// httpapi.ErrBadRequest: the version in force stays.
func (p *policySource) ApplyPolicy(ctx context.Context, actor string, f policy.Files, managers func(*policy.Set) ([]string, error)) (string, error) {
	set, err := policy.Parse(f)
	if err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	// Cedar decides the admin verbs once files are in force: files that
	// let no one manage the policy would lock the agency out of it.
	who, err := managers(set)
	if err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	if len(who) == 0 {
		return "", fmt.Errorf("apply policy: under these files no user could manage_policy, so no one could change them again; "+
			"permit it to a role, as examples/policy does (admins-manage), and check no forbid takes it from every user: %w", httpapi.ErrBadRequest)
	}
	v := set.Version()
	rec, err := json.Marshal(policyRecord{PolicyName: f.PolicyName, Policy: f.Policy, LimitsName: f.LimitsName, Limits: f.Limits})
	if err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	if _, err := p.audit.Put(ctx, nsPolicy, v, rec); err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	// The limits file's retention becomes the ledger's replicated rule (Apply checks prunes against it).
	if _, err := p.audit.SetRetention(ctx, set.Retention()); err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	if _, err := p.audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypePolicy, Outcome: ledger.OutcomeOK, PolicyVersion: v, Digest: filesDigest(f)},
		Body:   ledger.Body{Actor: actor, Purpose: "apply policy"},
	}); err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	p.refreshPolicy()
	return v, nil
}

// refreshPolicy puts in force the policy version the ledger says is in
// force, parsing its files from the records.
func (p *policySource) refreshPolicy() {
	want := p.audit.Status().Policy
	cur := p.Policy()
	if want == "" || want == cur.Version() {
		return
	}
	set, err := p.loadPolicy(want)
	if err != nil {
		p.log.Error("policy in force cannot be loaded; keeping the previous one", "version", want, "err", err)
		return
	}
	p.cur.Store(set)
	p.gauge.setPolicy(set.Version())
	p.log.Info("policy in force", "version", set.Version())
}

// loadPolicy parses the files recorded under version.
func (p *policySource) loadPolicy(version string) (*policy.Set, error) {
	b, err := p.audit.Get(nsPolicy, version)
	if err != nil {
		return nil, err
	}
	var r policyRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	set, err := policy.Parse(policy.Files{PolicyName: r.PolicyName, Policy: r.Policy, LimitsName: r.LimitsName, Limits: r.Limits})
	if err != nil {
		return nil, err
	}
	if set.Version() != version {
		return nil, errors.New("recorded files have another version")
	}
	return set, nil
}

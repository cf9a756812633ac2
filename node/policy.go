package node

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

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
// is refused with a *policy.FileError (file:line: reason) and the version
// in force stays.
func (n *Node) ApplyPolicy(ctx context.Context, actor string, f policy.Files) (string, error) {
	set, err := policy.Parse(f)
	if err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	v := set.Version()
	rec, err := json.Marshal(policyRecord{PolicyName: f.PolicyName, Policy: f.Policy, LimitsName: f.LimitsName, Limits: f.Limits})
	if err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) { return n.aud.Put(ctx, nsPolicy, v, rec) }); err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	// The limits file's retention becomes the ledger's replicated rule (Apply checks prunes against it).
	if _, err := n.aud.SetRetention(ctx, set.Retention()); err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypePolicy, Outcome: ledger.OutcomeOK, PolicyVersion: v, Digest: filesDigest(f)},
			Body:   ledger.Body{Actor: actor, Purpose: "apply policy"},
		})
	}); err != nil {
		return "", fmt.Errorf("apply policy: %w", err)
	}
	n.refreshPolicy()
	return v, nil
}

// refreshPolicy puts in force the policy version the ledger says is in
// force, parsing its files from the records.
func (n *Node) refreshPolicy() {
	want := n.aud.Status().Policy
	cur := n.Policy()
	if want == "" || want == cur.Version() {
		return
	}
	set, err := n.loadPolicy(want)
	if err != nil {
		n.log.Error("policy in force cannot be loaded; keeping the previous one", "version", want, "err", err)
		return
	}
	n.policy.Store(set)
	n.met.setPolicy(set.Version())
	n.log.Info("policy in force", "version", set.Version())
}

func (n *Node) loadPolicy(version string) (*policy.Set, error) {
	b, err := n.aud.Get(nsPolicy, version)
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

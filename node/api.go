package node

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// backend adapts a Node to httpapi.Backend.
type backend Node

func (b *backend) n() *Node { return (*Node)(b) }

func (b *backend) Authenticate(token string) (httpapi.User, error) { return b.n().authenticate(token) }

func (b *backend) Authorize(u httpapi.User, action string) error { return b.n().authorize(u, action) }

func (b *backend) Ready() error { return b.n().Ready() }

func (b *backend) Status() httpapi.Status {
	n := b.n()
	s := httpapi.Status{Agency: n.fc.Agency, Replica: n.fc.ReplicaID(), PeerID: n.host.ID().String(),
		Policy: n.Policy().Version(), Partners: n.connectedPartners()}
	for _, g := range n.groups() {
		st := g.l.Status()
		gs := httpapi.Group{Name: g.name, State: st.State, Leader: st.Leader, Quorum: st.Quorum, Healthy: st.Healthy,
			Applied: st.Applied, Commit: st.Commit, Size: st.Size}
		if st.Err != nil {
			gs.Error = st.Err.Error()
		}
		s.Groups = append(s.Groups, gs)
	}
	return s
}

func (b *backend) AddUser(ctx context.Context, actor httpapi.User, name, role string) (httpapi.NewUser, error) {
	return b.n().AddUser(ctx, actorName(actor), name, role)
}

func (b *backend) Users(ctx context.Context) ([]httpapi.User, error) { return b.n().Users() }

func (b *backend) RemoveUser(ctx context.Context, actor httpapi.User, name string) error {
	return b.n().RemoveUser(ctx, actorName(actor), name)
}

func (b *backend) Card(ctx context.Context) (httpapi.Card, error) {
	c, err := b.n().OwnCard()
	if err != nil {
		return httpapi.Card{}, err
	}
	text, err := c.MarshalText()
	if err != nil {
		return httpapi.Card{}, fmt.Errorf("card: %w", err)
	}
	return httpapi.Card{Card: string(text), Fingerprint: c.Fingerprint()}, nil
}

func (b *backend) AddPartner(ctx context.Context, actor httpapi.User, req httpapi.AddPartner) (httpapi.Partner, error) {
	c, err := card.Parse([]byte(req.Card))
	if err != nil {
		return httpapi.Partner{}, fmt.Errorf("pin partner: %w: %w", httpapi.ErrBadRequest, err)
	}
	return b.n().PinCard(ctx, actorName(actor), c, req.Fingerprint)
}

func (b *backend) Partners(ctx context.Context) ([]httpapi.Partner, error) {
	out := []httpapi.Partner{}
	err := b.n().aud.Scan(nsPins, "", func(agency string, v []byte) error {
		c, err := card.Decode(v)
		if err != nil {
			return fmt.Errorf("stored card of %s: %w", agency, err)
		}
		out = append(out, partnerInfo(c))
		return nil
	})
	return out, err
}

func (b *backend) RemovePartner(ctx context.Context, actor httpapi.User, agency string) error {
	return b.n().UnpinPartner(ctx, actorName(actor), agency)
}

func (b *backend) ApplyPolicy(ctx context.Context, actor httpapi.User, f policy.Files) (string, error) {
	return b.n().ApplyPolicy(ctx, actorName(actor), f)
}

func (b *backend) PolicyVersion() string { return b.n().Policy().Version() }

func (b *backend) Entries(ctx context.Context, actor httpapi.User, purpose string, f ledger.Filter) ([]ledger.Entry, error) {
	es, _, err := b.n().aud.Read(ctx, actorName(actor), purpose, f)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	if es == nil {
		es = []ledger.Entry{}
	}
	return es, nil
}

func (b *backend) Entry(ctx context.Context, actor httpapi.User, purpose string, index uint64) (httpapi.EntryProof, error) {
	n := b.n()
	if size, _, err := n.aud.TreeHead(); err != nil {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: %w", index, err)
	} else if index >= size {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: the ledger has %d entries: %w", index, size, httpapi.ErrNotFound)
	}
	// The read is logged first (no audit, no answer).
	if _, _, err := n.aud.Read(ctx, actorName(actor), purpose, ledger.Filter{After: index, Limit: 1}); err != nil {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: %w", index, err)
	}
	p, err := n.aud.Entry(index, 0)
	if err != nil {
		return httpapi.EntryProof{}, fmt.Errorf("read entry %d: %w", index, err)
	}
	out := httpapi.EntryProof{Entry: p.Entry, Leaf: p.Leaf, Size: p.Size, Root: base64.StdEncoding.EncodeToString(p.Root[:])}
	for _, h := range p.Proof {
		out.Proof = append(out.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	return out, nil
}

func (b *backend) Export(ctx context.Context, actor httpapi.User) (httpapi.Export, error) {
	tmp, err := os.MkdirTemp("", "xborder-export-")
	if err != nil {
		return httpapi.Export{}, fmt.Errorf("export ledger: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := b.n().aud.Export(ctx, tmp, actorName(actor)); err != nil {
		return httpapi.Export{}, fmt.Errorf("export ledger: %w", err)
	}
	var x httpapi.Export
	for name, dst := range map[string]*string{ledger.ExportCheckpoint: &x.Checkpoint, ledger.ExportPublicKey: &x.PublicKey,
		ledger.ExportEntries: &x.Entries} {
		body, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			return httpapi.Export{}, fmt.Errorf("export ledger: %w", err)
		}
		*dst = string(body)
	}
	return x, nil
}

func (b *backend) Prune(ctx context.Context, actor httpapi.User, before time.Time) (httpapi.PruneResult, error) {
	r, deleted, err := b.n().aud.Prune(ctx, before, actorName(actor))
	if err != nil {
		return httpapi.PruneResult{}, fmt.Errorf("prune ledger: %w", err)
	}
	return httpapi.PruneResult{Index: r.Index, Deleted: deleted}, nil
}

func (b *backend) AddReplica(ctx context.Context, actor httpapi.User, req httpapi.AddReplica) (json.RawMessage, error) {
	n := b.n()
	if !validReplicaID(req.ID) {
		return nil, fmt.Errorf("add replica %q: use 1 to 64 letters, digits or '-': %w", req.ID, httpapi.ErrBadRequest)
	}
	if n.isMember(req.ID) {
		return nil, fmt.Errorf("add replica %s: already a member: %w", req.ID, httpapi.ErrConflict)
	}
	if _, err := n.aud.Get(nsRemoved, req.ID); err == nil {
		return nil, fmt.Errorf("add replica %s: the ID of a removed replica; choose another: %w", req.ID, httpapi.ErrConflict)
	}
	if fi, err := os.Stat(n.path(CAKeyFile)); err != nil || fi.Size() == 0 {
		return nil, fmt.Errorf("add replica %s: this replica holds no CA key; ask the replica made by init: %w", req.ID, httpapi.ErrBadRequest)
	}
	bundle, err := n.NewBundle(req.ID, req.Hosts)
	if err != nil {
		return nil, err
	}
	n.log.Info("join bundle issued", "replica", req.ID, "user", actor.Name)
	return bundle.Marshal(), nil
}

func (b *backend) Replicas(ctx context.Context) ([]httpapi.Replica, error) {
	ms, err := b.n().aud.Members()
	if err != nil {
		return nil, err
	}
	out := make([]httpapi.Replica, 0, len(ms))
	for _, m := range ms {
		out = append(out, httpapi.Replica{ID: m.ID, Addr: m.Addr, Suffrage: m.Suffrage, Leader: m.Leader})
	}
	return out, nil
}

func (b *backend) RemoveReplica(ctx context.Context, actor httpapi.User, id string) error {
	return b.n().RemoveReplica(ctx, actorName(actor), id)
}

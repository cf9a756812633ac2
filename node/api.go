package node

import (
	"context"
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

// nodeState is what the status routes read of the replica itself
// (*Node): readiness and the partner replicas connected.
type nodeState interface {
	Ready() error
	connectedPartners() int
}

// backend is the node's httpapi.Backend (with httpapi.QueryBackend and
// httpapi.DataBackend): it routes each call to the component that serves
// it, and reads the audit ledger for auditors. It holds no state of its own.
type backend struct {
	agency   string // agency code
	replica  string // this replica's ID
	peer     string // this replica's libp2p peer ID
	node     nodeState
	audit    *raftGroup
	data     *raftGroup
	users    *users
	cards    *cards
	policy   *policySource
	replicas *replicaSet
	querier  *querier
	holdings holdingsRoutes
	witness  *witnessing
	partners *partnerSets // copies of partners' sets, for the console (console_ops.go)
	// followups is the owner's side of step 2: the liaison's inbox and
	// answers (followup_in.go, followup_inbox*.go).
	followups *followupsIn
	// followOut is the querier's side of step 2: follow-ups this agency
	// sends and their answers (followup_out*.go, followup_poll.go).
	followOut *followupOut
}

var _ httpapi.Backend = (*backend)(nil)

func (b *backend) Authenticate(token string) (httpapi.User, error) {
	return b.users.authenticate(token)
}

func (b *backend) Authorize(u httpapi.User, action string) error { return b.users.authorize(u, action) }

func (b *backend) Ready() error { return b.node.Ready() }

func (b *backend) Status() httpapi.Status {
	s := httpapi.Status{Agency: b.agency, Replica: b.replica, PeerID: b.peer,
		Policy: b.policy.Policy().Version(), Partners: b.node.connectedPartners()}
	for _, g := range []*raftGroup{b.audit, b.data} {
		st := g.Status()
		gs := httpapi.Group{Name: g.name, State: st.State, Leader: st.Leader, Quorum: st.Quorum, Healthy: st.Healthy,
			Applied: st.Applied, Commit: st.Commit, Size: st.Size}
		if st.Err != nil {
			gs.Error = st.Err.Error()
		}
		s.Groups = append(s.Groups, gs)
	}
	if b.witness != nil {
		s.Witness = b.witness.status()
	}
	return s
}

func (b *backend) AddUser(ctx context.Context, actor httpapi.User, name, role string) (httpapi.NewUser, error) {
	return b.users.AddUser(ctx, actorName(actor), name, role)
}

func (b *backend) Users(ctx context.Context) ([]httpapi.User, error) { return b.users.Users() }

func (b *backend) RemoveUser(ctx context.Context, actor httpapi.User, name string) error {
	return b.users.RemoveUser(ctx, actorName(actor), name)
}

func (b *backend) Card(ctx context.Context) (httpapi.Card, error) {
	c, err := b.cards.OwnCard()
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
	return b.cards.PinCard(ctx, actorName(actor), c, req.Fingerprint)
}

func (b *backend) Partners(ctx context.Context) ([]httpapi.Partner, error) { return b.cards.Partners() }

func (b *backend) RemovePartner(ctx context.Context, actor httpapi.User, agency string) error {
	return b.cards.UnpinPartner(ctx, actorName(actor), agency)
}

func (b *backend) ApplyPolicy(ctx context.Context, actor httpapi.User, f policy.Files) (string, error) {
	return b.policy.ApplyPolicy(ctx, actorName(actor), f, b.users.policyManagers)
}

func (b *backend) PolicyVersion() string { return b.policy.Policy().Version() }

func (b *backend) Entries(ctx context.Context, actor httpapi.User, purpose string, f ledger.Filter) ([]ledger.Entry, error) {
	es, _, err := b.audit.Read(ctx, actorName(actor), purpose, f)
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	if es == nil {
		es = []ledger.Entry{}
	}
	return es, nil
}

func (b *backend) Entry(ctx context.Context, actor httpapi.User, purpose string, index uint64) (httpapi.EntryProof, error) {
	return b.EntryProof(ctx, actor, purpose, index, 0) // console.go
}

func (b *backend) Export(ctx context.Context, actor httpapi.User) (httpapi.Export, error) {
	tmp, err := os.MkdirTemp("", "xborder-export-")
	if err != nil {
		return httpapi.Export{}, fmt.Errorf("export ledger: %w", err)
	}
	defer os.RemoveAll(tmp)
	cp, err := b.audit.Export(ctx, tmp, actorName(actor))
	if err != nil {
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
	if b.witness != nil {
		// Every cosignature the partners' witnesses give the export's
		// checkpoint goes into the export (none: the checkpoint alone).
		cosigned, err := b.witness.cosignExport(ctx, cp)
		if err != nil {
			return httpapi.Export{}, fmt.Errorf("export ledger: %w", err)
		}
		x.Checkpoint = string(cosigned)
	}
	return x, nil
}

func (b *backend) Checkpoint(ctx context.Context) (httpapi.Published, error) {
	cp, err := b.audit.Checkpoint()
	if err != nil {
		return httpapi.Published{}, fmt.Errorf("read checkpoint: %w", err)
	}
	p := httpapi.Published{Checkpoint: string(cp.Note)}
	if c, err := b.audit.Get(nsCosigned, "checkpoint"); err == nil {
		p.Cosigned = string(c)
	}
	return p, nil
}

func (b *backend) Prune(ctx context.Context, actor httpapi.User, before time.Time) (httpapi.PruneResult, error) {
	r, deleted, err := b.audit.Prune(ctx, before, actorName(actor))
	if err != nil {
		return httpapi.PruneResult{}, fmt.Errorf("prune ledger: %w", err)
	}
	return httpapi.PruneResult{Index: r.Index, Deleted: deleted}, nil
}

func (b *backend) AddReplica(ctx context.Context, actor httpapi.User, req httpapi.AddReplica) (json.RawMessage, error) {
	bundle, err := b.replicas.issueBundle(req.ID, req.Hosts, actor.Name)
	if err != nil {
		return nil, err
	}
	return bundle.Marshal(), nil
}

func (b *backend) Replicas(ctx context.Context) ([]httpapi.Replica, error) {
	ms, err := b.audit.Members()
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
	return b.replicas.RemoveReplica(ctx, actorName(actor), id)
}

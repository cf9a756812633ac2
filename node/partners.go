package node

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// replicaRecord is what a replica records about itself in the audit
// group, so that the agency card lists every replica.
type replicaRecord struct {
	PeerID string   `json:"peer_id"`
	Addrs  []string `json:"addrs"`
	Raft   string   `json:"raft"`
}

func (n *Node) replicaRecord() []byte {
	r := replicaRecord{PeerID: n.host.ID().String(), Raft: n.mux.Addr().String()}
	for _, a := range n.host.Addrs() {
		r.Addrs = append(r.Addrs, a.String())
	}
	b, _ := json.Marshal(r)
	return b
}

func certPool(pemBytes []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no PEM certificate")
	}
	return p, nil
}

// replicas returns the agency's replicas as the card lists them: those
// recorded in the audit group, and this replica in any case.
func (n *Node) replicas() []card.Replica {
	var own replicaRecord
	json.Unmarshal(n.replicaRecord(), &own)
	byID := map[string]card.Replica{n.fc.ReplicaID(): {PeerID: own.PeerID, Addrs: own.Addrs}}
	n.aud.Scan(nsReplicas, "", func(id string, v []byte) error {
		var r replicaRecord
		if json.Unmarshal(v, &r) == nil && id != n.fc.ReplicaID() && len(r.Addrs) > 0 {
			byID[id] = card.Replica{PeerID: r.PeerID, Addrs: r.Addrs}
		}
		return nil
	})
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]card.Replica, 0, len(ids))
	for _, id := range ids {
		if len(out) < card.MaxReplicas {
			out = append(out, byID[id])
		}
	}
	return out
}

// OwnCard returns the agency's signed card, signing a new one when the
// replica set changed or the last one is past half its validity. Its
// sequence is the issue time in Unix seconds, so a later card is newer.
func (n *Node) OwnCard() (*card.Card, error) {
	reps, eks := n.replicas(), n.cardEpochKeys()
	repKey, _ := json.Marshal(struct {
		R []card.Replica
		E []card.EpochKey
	}{reps, eks})
	validity, err := n.fc.Validity()
	if err != nil {
		return nil, err
	}
	if validity > card.MaxValidity {
		validity = card.MaxValidity
	}
	now := n.now().UTC().Truncate(time.Second)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.own != nil && n.ownKey == string(repKey) && now.Before(n.own.Issued.Add(validity/2)) {
		return n.own, nil
	}
	seq := uint64(now.Unix())
	if n.own != nil && seq <= n.own.Sequence {
		seq = n.own.Sequence + 1
	}
	c := &card.Card{Version: card.Version, Agency: n.fc.Agency, Name: n.fc.Name, Replicas: reps, EpochKeys: eks,
		Issued: now, Expires: now.Add(validity), Sequence: seq}
	if err := c.Sign(n.key); err != nil {
		return nil, fmt.Errorf("sign agency card: %w", err)
	}
	n.own, n.ownKey = c, string(repKey)
	return c, nil
}

// refreshPins reads the pins from the records and hands the host the allow
// set: this agency's replicas and every pinned, unexpired card's replicas.
func (n *Node) refreshPins() error {
	own, err := n.OwnCard()
	if err != nil {
		return err
	}
	now := n.now()
	pins := map[string]*card.Card{}
	cards := []*card.Card{own}
	err = n.aud.Scan(nsPins, "", func(agency string, v []byte) error {
		c, err := card.Decode(v)
		if err == nil {
			err = c.Verify(now)
		}
		if err != nil {
			n.log.Warn("pinned card not in force", "partner", agency, "err", err)
			return nil
		}
		pins[agency] = c
		cards = append(cards, c)
		return nil
	})
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.pins = pins
	n.mu.Unlock()
	return n.host.SetCards(cards...)
}

// Pins returns the verified pinned partner cards by agency code.
func (n *Node) Pins() map[string]*card.Card {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]*card.Card, len(n.pins))
	for k, v := range n.pins {
		out[k] = v
	}
	return out
}

// partnerInfo describes a pinned card.
func partnerInfo(c *card.Card) httpapi.Partner {
	p := httpapi.Partner{Agency: c.Agency, Name: c.Name, Fingerprint: c.Fingerprint(), Sequence: c.Sequence, Expires: c.Expires}
	for _, r := range c.Replicas {
		p.Replicas = append(p.Replicas, r.PeerID)
	}
	return p
}

// PinCard pins a partner's card after checking its signature, validity
// and, when fingerprint is not empty, its fingerprint. A card of an agency
// already pinned must be signed by the same key and newer. The pin is a
// replicated record and an audit entry; the host admits the partner's
// replicas at once.
func (n *Node) PinCard(ctx context.Context, actor string, c *card.Card, fingerprint string) (httpapi.Partner, error) {
	if err := c.Verify(n.now()); err != nil {
		return httpapi.Partner{}, fmt.Errorf("pin partner: %w: %w", httpapi.ErrBadRequest, err)
	}
	if fingerprint != "" {
		if err := c.CheckFingerprint(fingerprint); err != nil {
			return httpapi.Partner{}, fmt.Errorf("pin partner: %w: %w", httpapi.ErrBadRequest, err)
		}
	}
	if c.Agency == n.fc.Agency {
		return httpapi.Partner{}, fmt.Errorf("pin partner: card of %s is this agency's own: %w", c.Agency, httpapi.ErrBadRequest)
	}
	p := partnerInfo(c)
	purpose := "pin"
	if old, err := n.aud.Get(nsPins, c.Agency); err == nil {
		oc, err := card.Decode(old)
		if err != nil {
			return p, fmt.Errorf("pin partner: stored card of %s: %w", c.Agency, err)
		}
		if err := card.Replaces(oc, c); err != nil {
			return p, fmt.Errorf("pin partner: %w: %w", httpapi.ErrConflict, err)
		}
		purpose, p.Replaced = "replace", true
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return p, fmt.Errorf("pin partner: %w", err)
	}
	bin, err := c.Encode()
	if err != nil {
		return p, fmt.Errorf("pin partner: %w", err)
	}
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypePartner, Partner: c.Agency, Outcome: ledger.OutcomeOK,
				Count: c.Sequence, Digest: sha256.Sum256(bin)},
			Body: ledger.Body{Actor: actor, Purpose: purpose + " partner card " + c.Fingerprint()},
		})
	}); err != nil {
		return p, fmt.Errorf("pin partner: %w", err)
	}
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) {
		return n.aud.Put(ctx, nsPins, c.Agency, bin)
	}); err != nil {
		return p, fmt.Errorf("pin partner: %w", err)
	}
	n.log.Info("partner pinned", "partner", c.Agency, "sequence", c.Sequence, "replicas", len(c.Replicas))
	return p, n.refreshPins()
}

// UnpinPartner removes a partner's pin (an audit entry) and closes its
// connections.
func (n *Node) UnpinPartner(ctx context.Context, actor, agency string) error {
	agency = strings.ToUpper(agency)
	if _, err := n.aud.Get(nsPins, agency); err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return fmt.Errorf("remove partner %s: not pinned: %w", agency, httpapi.ErrNotFound)
		}
		return fmt.Errorf("remove partner %s: %w", agency, err)
	}
	if _, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypePartner, Partner: agency, Outcome: ledger.OutcomeOK},
			Body:   ledger.Body{Actor: actor, Purpose: "remove partner"},
		})
	}); err != nil {
		return fmt.Errorf("remove partner %s: %w", agency, err)
	}
	if _, err := n.commit(GroupAudit, "delete", func() (ledger.Receipt, error) {
		return n.aud.Delete(ctx, nsPins, agency)
	}); err != nil {
		return fmt.Errorf("remove partner %s: %w", agency, err)
	}
	n.log.Info("partner removed", "partner", agency)
	return n.refreshPins()
}

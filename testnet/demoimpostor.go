package testnet

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/node"
	"github.com/xborder/xborder/node/host"
)

// impostor is q speaking to o outside q's node: a libp2p host with q's
// first replica's identity (the only identity o's gater admits for q) and
// an exchange client signing with q's agency key, o's card pinned. The
// demo uses it to send o hand-built requests that q's node would never
// send, and shows o refuses them.
type impostor struct {
	host   *host.Host
	client *exchange.Client
	card   *card.Card // o's card, as o serves it
}

// impersonate builds the impostor of q towards o; close its host.
func (d *demo) impersonate(ctx context.Context, q, o *AgencyNode) (*impostor, error) {
	dir := q.Replicas[0].Dir
	agencyKey, err := ledger.LoadKey(filepath.Join(dir, node.AgencyKeyFile))
	if err != nil {
		return nil, err
	}
	p2pKey, err := ledger.LoadKey(filepath.Join(dir, node.P2PKeyFile))
	if err != nil {
		return nil, err
	}
	cl, err := d.client(o, "admin")
	if err != nil {
		return nil, err
	}
	oc, err := cl.Card(ctx)
	if err != nil {
		return nil, err
	}
	c, err := card.Parse([]byte(oc.Card))
	if err != nil {
		return nil, err
	}
	h, err := host.New(ctx, host.Config{Key: p2pKey})
	if err != nil {
		return nil, err
	}
	if err := h.SetCards(c); err != nil {
		h.Close()
		return nil, err
	}
	xcl, err := exchange.NewClient(exchange.ClientConfig{Agency: q.Code, Signer: agencyKey, Keys: pinnedKey{o.Code, c.Key}})
	if err != nil {
		h.Close()
		return nil, err
	}
	return &impostor{host: h, client: xcl, card: c}, nil
}

// peer is o's first replica.
func (im *impostor) peer() exchange.PeerID { return exchange.PeerID(im.card.Replicas[0].PeerID) }

// latestEpoch is the newest epoch of kind (and reach, unless empty) in o's
// card.
func (im *impostor) latestEpoch(kind, reach string) uint64 {
	var epoch uint64
	for _, k := range im.card.EpochKeys {
		if k.Kind == kind && (reach == "" || k.Reach == reach) && k.Epoch > epoch {
			epoch = k.Epoch
		}
	}
	return epoch
}

// denial returns the reason o denied a hand-built request with, or an
// error when o did not deny it (accepted is what to say when it answered).
func denial(err error, accepted string) (exchange.Reason, error) {
	var denied *exchange.DeniedError
	if errors.As(err, &denied) {
		return denied.Reason, nil
	}
	if err == nil {
		return "", errors.New(accepted)
	}
	return "", err
}

// pinnedKey is exchange.Keys for one agency.
type pinnedKey struct {
	agency string
	key    ed25519.PublicKey
}

func (p pinnedKey) AgencyKey(agency string) (ed25519.PublicKey, error) {
	if agency != p.agency {
		return nil, fmt.Errorf("agency %s is not pinned", agency)
	}
	return p.key, nil
}

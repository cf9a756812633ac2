package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/node/host"
)

// partnerCard returns a signed card of agency cc listing the given peer IDs,
// each at one loopback address.
func partnerCard(t *testing.T, cc string, peers ...string) *card.Card {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	c := &card.Card{Version: card.Version, Agency: cc, Name: "Agency " + cc, Issued: now,
		Expires: now.Add(24 * time.Hour), Sequence: uint64(now.Unix())}
	for _, p := range peers {
		c.Replicas = append(c.Replicas, card.Replica{PeerID: p, Addrs: []string{"/ip4/127.0.0.1/tcp/9"}})
	}
	if err := c.Sign(newKey(t)); err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return c
}

// randomPeer returns the peer ID of a fresh key.
func randomPeer(t *testing.T) peer.ID {
	t.Helper()
	id, err := host.PeerIDOf(newKey(t).Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func cardText(t *testing.T, c *card.Card) string {
	t.Helper()
	b, err := c.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A hostile partner's card cannot be pinned when a replica's peer ID does
// not decode, when its addresses do not parse, or when it claims a peer ID
// that this agency or another pinned partner holds; and nothing is stored.
func TestPinRefusesCardTheAllowSetWouldRefuse(t *testing.T) {
	noLeaks(t)
	gb := startNode(t, "GB")
	ctx := context.Background()
	frPeer := randomPeer(t)
	if _, err := gb.admin.AddPartner(ctx, cardText(t, partnerCard(t, "FR", frPeer.String())), ""); err != nil {
		t.Fatalf("GB pins FR: %v", err)
	}
	badAddr := partnerCard(t, "PL", randomPeer(t).String())
	badAddr.Replicas[0].Addrs = []string{"/not/a/multiaddr"}
	if err := badAddr.Sign(newKey(t)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		c    *card.Card
		want error
	}{
		{"peer ID that does not decode", partnerCard(t, "IT", "not-a-peer-id"), httpapi.ErrBadRequest},
		{"address that does not parse", badAddr, httpapi.ErrBadRequest},
		{"peer ID of a pinned partner", partnerCard(t, "ES", randomPeer(t).String(), frPeer.String()), httpapi.ErrConflict},
		{"peer ID of this agency", partnerCard(t, "NL", gb.PeerID().String()), httpapi.ErrConflict},
	} {
		if _, err := gb.admin.AddPartner(ctx, cardText(t, tc.c), ""); !errors.Is(err, tc.want) {
			t.Errorf("pin a card with a %s: %v; want %v", tc.name, err, tc.want)
		}
	}
	if ps, err := gb.admin.Partners(ctx); err != nil || len(ps) != 1 || ps[0].Agency != "FR" {
		t.Errorf("Partners = %+v, %v; want FR alone", ps, err)
	}
	if a, ok := gb.Host().Allows(frPeer); !ok || a != "FR" {
		t.Errorf("Allows(FR's replica) = %q, %v; want FR", a, ok)
	}
}

// A pin the allow set cannot take (here one recorded before pins were
// checked) leaves the rest of the allow set in force: a removal still
// applies, the contested peer is admitted for neither agency, and after a
// restart the allow set is rebuilt from the pins, not left empty.
func TestBadPinDoesNotFreezeAllowSet(t *testing.T) {
	noLeaks(t)
	gb, stop := startStoppable(t, "GB", 0)
	ctx := context.Background()
	frPeer, dePeer, shared := randomPeer(t), randomPeer(t), randomPeer(t)
	for _, c := range []*card.Card{partnerCard(t, "FR", frPeer.String(), shared.String()), partnerCard(t, "DE", dePeer.String())} {
		if _, err := gb.admin.AddPartner(ctx, cardText(t, c), ""); err != nil {
			t.Fatalf("GB pins %s: %v", c.Agency, err)
		}
	}
	// Recorded behind PinCard's back, as a pin of an older version or a
	// racing re-pin could be.
	for _, c := range []*card.Card{partnerCard(t, "IT", shared.String()), partnerCard(t, "PL", "not-a-peer-id")} {
		if _, err := gb.auditG.Put(ctx, nsPins, c.Agency, mustEncode(t, c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := gb.cards.refreshPins(); err != nil {
		t.Errorf("refreshPins with bad pins recorded: %v; want the others in force", err)
	}
	if err := gb.admin.RemovePartner(ctx, "DE"); err != nil {
		t.Fatalf("RemovePartner(DE): %v", err)
	}
	if _, ok := gb.Host().Allows(dePeer); ok {
		t.Errorf("DE's replica still allowed after DE was removed: the allow set is frozen")
	}
	if a, ok := gb.Host().Allows(frPeer); !ok || a != "FR" {
		t.Errorf("Allows(FR's replica) = %q, %v; want FR", a, ok)
	}
	if a, ok := gb.Host().Allows(shared); ok {
		t.Errorf("Allows(peer claimed by FR and IT) = %q; want neither", a)
	}
	if a, ok := gb.Host().Allows(gb.PeerID()); !ok || a != "GB" {
		t.Errorf("Allows(own replica) = %q, %v; want GB", a, ok)
	}
	stop()
	n := openNode(t, gb.dir)
	if a, ok := n.Host().Allows(frPeer); !ok || a != "FR" {
		t.Errorf("after a restart, Allows(FR's replica) = %q, %v; want FR", a, ok)
	}
	if _, ok := n.Host().Allows(dePeer); ok {
		t.Errorf("after a restart, DE's replica is allowed; want it removed")
	}
}

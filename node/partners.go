package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/card"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/node/host"
)

// epochKeyLister lists the epoch keys the agency's card carries (the
// epochs: cardEpochKeys).
type epochKeyLister interface {
	cardEpochKeys() []card.EpochKey
}

// replicaLister lists the agency's replicas as its card names them
// (*replicaSet).
type replicaLister interface {
	replicas() []card.Replica
}

// allowSet admits peers: the replicas of the agency's own card and of every
// pinned card in force (*Host).
type allowSet interface {
	SetCards(cards ...*card.Card) error
}

// cardsConfig is what cards are built from.
type cardsConfig struct {
	Agency   string                        // this agency's code
	Name     string                        // this agency's name, on its card
	Validity func() (time.Duration, error) // how long a card is valid (config.yaml)
	Key      ed25519.PrivateKey            // the agency key that signs the card
	Audit    *raftGroup                    // pins are its records, each change an entry
	Replicas replicaLister
	Epochs   epochKeyLister
	Allow    allowSet
	Now      func() time.Time
	Log      *slog.Logger
}

// cards are the agency's own signed card and its partners' pinned cards:
// pins are records of the audit group, each change an audit entry; cards
// holds the verified pins in force, hands them (with its own card) to the
// host's allow set, and serves partners' agency keys (exchange.Keys). It
// starts no goroutine.
type cards struct {
	cfg cardsConfig

	mu     sync.Mutex
	pins   map[string]*card.Card // agency code to verified pinned card
	own    *card.Card
	ownKey string // replica set and epoch keys the own card was made for
	// ownRecorded: own's sequence is recorded as the agency's highest
	// (issueSequence); if not, the next OwnCard signs again.
	ownRecorded bool
	// pinRead, when set (tests), is called by PinCard once it has read
	// the pin in force, before it writes.
	pinRead func(pc *card.Card)
	// unpinWrite, when set (tests), is called by UnpinPartner once it has
	// read the pin, before it removes it.
	unpinWrite func(agency string)
}

var _ exchange.Keys = (*cards)(nil)

// newCards returns the cards of cfg; refreshPins loads the pins.
func newCards(cfg cardsConfig) *cards {
	return &cards{cfg: cfg, pins: map[string]*card.Card{}}
}

// OwnCard returns the agency's signed card, signing a new one when the
// replica set changed or the last one is past half its validity. Its
// sequence is the issue time in Unix seconds, or above every sequence a
// replica of the agency issued before if that is higher (issueSequence),
// so a later card is newer whichever replica signed it.
func (c *cards) OwnCard() (*card.Card, error) {
	reps, eks := c.cfg.Replicas.replicas(), c.cfg.Epochs.cardEpochKeys()
	repKey, _ := json.Marshal(struct {
		R []card.Replica
		E []card.EpochKey
	}{reps, eks})
	validity, err := c.cfg.Validity()
	if err != nil {
		return nil, err
	}
	if validity > card.MaxValidity {
		validity = card.MaxValidity
	}
	now := c.cfg.Now().UTC().Truncate(time.Second)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.own != nil && c.ownKey == string(repKey) && c.ownRecorded && now.Before(c.own.Issued.Add(validity/2)) {
		return c.own, nil
	}
	seq := uint64(now.Unix())
	if c.own != nil && seq <= c.own.Sequence {
		seq = c.own.Sequence + 1
	}
	seq, recorded := c.issueSequence(seq) // above every replica's (card_sequence.go)
	own := &card.Card{Version: card.Version, Agency: c.cfg.Agency, Name: c.cfg.Name, Replicas: reps, EpochKeys: eks,
		Witness: witnessKey(c.cfg.Key).Public().(ed25519.PublicKey), Issued: now, Expires: now.Add(validity), Sequence: seq}
	if err := own.Sign(c.cfg.Key); err != nil {
		return nil, fmt.Errorf("sign agency card: %w", err)
	}
	c.own, c.ownKey, c.ownRecorded = own, string(repKey), recorded
	return own, nil
}

// refreshPins reads the pins from the records and hands the host the allow
// set: this agency's replicas and every pinned, unexpired card's replicas.
// A replica the allow set cannot take is logged and left out; the rest is
// in force all the same.
func (c *cards) refreshPins() error {
	own, err := c.OwnCard()
	if err != nil {
		return err
	}
	now := c.cfg.Now()
	pins := map[string]*card.Card{}
	allow := []*card.Card{own}
	err = c.cfg.Audit.Scan(nsPins, "", func(agency string, v []byte) error {
		pc, err := card.Decode(v)
		if err == nil {
			err = pc.Verify(now)
		}
		if err != nil {
			c.cfg.Log.Warn("pinned card not in force", "partner", agency, "err", err)
			return nil
		}
		pins[agency] = pc
		allow = append(allow, pc)
		return nil
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pins = pins
	c.mu.Unlock()
	// A replica the allow set cannot take is left out and the rest applied:
	// one bad pin never freezes the allow set. PinCard refuses such cards,
	// so this is a pin recorded before it did, or one that raced another.
	if err := c.cfg.Allow.SetCards(allow...); err != nil {
		c.cfg.Log.Warn("pinned cards only partly in force; remove or re-pin them", "err", err)
	}
	return nil
}

// Pins returns the verified pinned partner cards by agency code.
func (c *cards) Pins() map[string]*card.Card {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]*card.Card, len(c.pins))
	for k, v := range c.pins {
		out[k] = v
	}
	return out
}

// pinned returns the card pinned for agency, if one is in force.
func (c *cards) pinned(agency string) (*card.Card, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc, ok := c.pins[agency]
	return pc, ok
}

// AgencyKey returns the agency key of a pinned partner card in force
// (exchange.Keys).
func (c *cards) AgencyKey(agency string) (ed25519.PublicKey, error) {
	c.mu.Lock()
	pc, ok := c.pins[agency]
	c.mu.Unlock()
	if !ok || agency == c.cfg.Agency {
		return nil, fmt.Errorf("agency key of %s: %w", agency, ErrNotPinned)
	}
	return pc.Key, nil
}

// Partners lists the pinned cards as recorded (in force or not), by agency
// code.
func (c *cards) Partners() ([]httpapi.Partner, error) {
	out := []httpapi.Partner{}
	err := c.cfg.Audit.Scan(nsPins, "", func(agency string, v []byte) error {
		pc, err := card.Decode(v)
		if err != nil {
			return fmt.Errorf("stored card of %s: %w", agency, err)
		}
		out = append(out, partnerInfo(pc))
		return nil
	})
	return out, err
}

// partnerInfo describes a pinned card.
func partnerInfo(c *card.Card) httpapi.Partner {
	p := httpapi.Partner{Agency: c.Agency, Name: c.Name, Fingerprint: c.Fingerprint(), Sequence: c.Sequence, Expires: c.Expires}
	for _, r := range c.Replicas {
		p.Replicas = append(p.Replicas, r.PeerID)
	}
	if c.Witness != nil {
		p.Witness, _ = exchange.WitnessVerifierKey(c.Agency, c.Witness)
	}
	return p
}

// PinCard pins a partner's card after checking its signature, validity
// and, when fingerprint is not empty, its fingerprint, and that the allow
// set can take its replicas: peer IDs and addresses that parse, and no peer
// ID that this agency or another recorded pin holds (ErrConflict). A card of an agency
// already pinned must be signed by the same key and newer. The pin is a
// replicated record and an audit entry; the host admits the partner's
// replicas at once.
func (c *cards) PinCard(ctx context.Context, actor string, pc *card.Card, fingerprint string) (httpapi.Partner, error) {
	if err := pc.Verify(c.cfg.Now()); err != nil {
		return httpapi.Partner{}, fmt.Errorf("pin partner: %w: %w", httpapi.ErrBadRequest, err)
	}
	if fingerprint != "" {
		if err := pc.CheckFingerprint(fingerprint); err != nil {
			return httpapi.Partner{}, fmt.Errorf("pin partner: %w: %w", httpapi.ErrBadRequest, err)
		}
	}
	if pc.Agency == c.cfg.Agency {
		return httpapi.Partner{}, fmt.Errorf("pin partner: card of %s is this agency's own: %w", pc.Agency, httpapi.ErrBadRequest)
	}
	if err := c.checkReplicas(pc); err != nil {
		return httpapi.Partner{}, err
	}
	p := partnerInfo(pc)
	bin, err := pc.Encode()
	if err != nil {
		return p, fmt.Errorf("pin partner: %w", err)
	}
	// The check against the pin in force and the write are one
	// compare-and-swap with the partner entry (SwapAppend): two pins of
	// one partner at once (two syncs, a sync and an admin, two replicas)
	// cannot both pass against the same pin, so neither the entries nor
	// the pin in force ever go back to an older card. The loser reads
	// the pin anew and is refused if its card is no longer newer.
	for attempt := 1; ; attempt++ {
		expect, purpose, err := c.pinExpect(ctx, pc)
		if err != nil {
			return p, err
		}
		p.Replaced = purpose == "replace"
		if c.pinRead != nil {
			c.pinRead(pc)
		}
		// A command ID of its own for each attempt: a retry under the
		// same ID would get the conflict again.
		_, err = c.cfg.Audit.SwapAppend(ledger.WithCommandID(ctx, ledger.NewCommandID()), nsPins, pc.Agency, expect, bin, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypePartner, Partner: pc.Agency, Outcome: ledger.OutcomeOK,
				Count: pc.Sequence, Digest: sha256.Sum256(bin)},
			Body: ledger.Body{Actor: actor, Purpose: purpose + " partner card " + pc.Fingerprint()},
		})
		if err == nil {
			break
		}
		if !errors.Is(err, ledger.ErrConflict) {
			return p, fmt.Errorf("pin partner: %w", err)
		}
		if attempt == pinAttempts {
			return p, fmt.Errorf("pin partner: the pin of %s changed %d times while this card was pinned; try again: %w: %w",
				pc.Agency, attempt, httpapi.ErrConflict, err)
		}
	}
	c.cfg.Log.Info("partner pinned", "partner", pc.Agency, "sequence", pc.Sequence, "replicas", len(pc.Replicas))
	return p, c.refreshPins()
}

// pinAttempts bounds PinCard's compare-and-swap: each conflict is another
// pin of the same partner written in between.
const pinAttempts = 8

// pinExpect reads the pin of pc's agency in force (a linearizable read)
// and checks that pc replaces it: it returns the digest the pin must
// still have when pc is written (zero: no pin) and the entry's purpose,
// "pin" or "replace". A card that does not replace the pin is refused
// (httpapi.ErrConflict).
func (c *cards) pinExpect(ctx context.Context, pc *card.Card) (ledger.Digest, string, error) {
	if err := c.cfg.Audit.Linearize(ctx); err != nil {
		return ledger.Digest{}, "", fmt.Errorf("pin partner: %w", err)
	}
	old, err := c.cfg.Audit.Get(nsPins, pc.Agency)
	if errors.Is(err, ledger.ErrNotFound) {
		return ledger.Digest{}, "pin", nil
	}
	if err != nil {
		return ledger.Digest{}, "", fmt.Errorf("pin partner: %w", err)
	}
	oc, err := card.Decode(old)
	if err != nil {
		return ledger.Digest{}, "", fmt.Errorf("pin partner: stored card of %s: %w", pc.Agency, err)
	}
	if err := card.Replaces(oc, pc); err != nil {
		return ledger.Digest{}, "", fmt.Errorf("pin partner: %w: %w", httpapi.ErrConflict, err)
	}
	return ledger.ValueDigest(old), "replace", nil
}

// checkReplicas refuses a card whose replicas the allow set could not take
// beside this agency's own card and every other recorded pin (in force or
// not: a peer ID stays its agency's until the pin is removed).
func (c *cards) checkReplicas(pc *card.Card) error {
	own, err := c.OwnCard()
	if err != nil {
		return fmt.Errorf("pin partner: %w", err)
	}
	held := []*card.Card{own}
	err = c.cfg.Audit.Scan(nsPins, "", func(agency string, v []byte) error {
		if oc, err := card.Decode(v); err == nil && agency != pc.Agency {
			held = append(held, oc)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pin partner: %w", err)
	}
	switch err := host.CheckCard(pc, held...); {
	case errors.Is(err, host.ErrPeerClaimed):
		return fmt.Errorf("pin partner: %w: %w", httpapi.ErrConflict, err)
	case err != nil:
		return fmt.Errorf("pin partner: %w: %w", httpapi.ErrBadRequest, err)
	}
	return nil
}

// UnpinPartner removes a partner's pin (an audit entry) and closes its
// connections. The removal and its entry are one compare-and-swap
// (DeleteAppend) on the pin read: a pin of the partner written in between
// makes it read again and remove that one, so the last partner entry is
// the removal and no pin stays in force after it.
func (c *cards) UnpinPartner(ctx context.Context, actor, agency string) error {
	agency = strings.ToUpper(agency)
	for attempt := 1; ; attempt++ {
		if err := c.cfg.Audit.Linearize(ctx); err != nil {
			return fmt.Errorf("remove partner %s: %w", agency, err)
		}
		old, err := c.cfg.Audit.Get(nsPins, agency)
		if err != nil {
			if errors.Is(err, ledger.ErrNotFound) {
				return fmt.Errorf("remove partner %s: not pinned: %w", agency, httpapi.ErrNotFound)
			}
			return fmt.Errorf("remove partner %s: %w", agency, err)
		}
		if c.unpinWrite != nil {
			c.unpinWrite(agency)
		}
		_, err = c.cfg.Audit.DeleteAppend(ledger.WithCommandID(ctx, ledger.NewCommandID()), nsPins, agency, ledger.ValueDigest(old), ledger.Entry{
			Header: ledger.Header{Type: ledger.TypePartner, Partner: agency, Outcome: ledger.OutcomeOK},
			Body:   ledger.Body{Actor: actor, Purpose: "remove partner"},
		})
		if err == nil {
			break
		}
		if !errors.Is(err, ledger.ErrConflict) {
			return fmt.Errorf("remove partner %s: %w", agency, err)
		}
		if attempt == pinAttempts {
			return fmt.Errorf("remove partner %s: the pin changed %d times while it was removed; try again: %w: %w",
				agency, attempt, httpapi.ErrConflict, err)
		}
	}
	c.cfg.Log.Info("partner removed", "partner", agency)
	return c.refreshPins()
}

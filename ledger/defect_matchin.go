//go:build defect_drop_match_in

package ledger

import "sync/atomic"

// A planted defect, for `testnet chaos`'s own test only: the first
// admission of an inbound query on each replica is acknowledged without
// recording its match_in, so the partner gets an answer its ledger does
// not hold. The checker must find the match_in missing.

var defectDropped atomic.Bool

func (l *Ledger) defectAppend(*Entry) (Receipt, bool) { return Receipt{}, false }

func (l *Ledger) defectAdmit(e *Entry) (Receipt, bool) {
	if e.Type != TypeMatchIn || !defectDropped.CompareAndSwap(false, true) {
		return Receipt{}, false
	}
	size, _, err := l.TreeHead()
	if err != nil {
		return Receipt{}, false
	}
	return Receipt{Index: size, Appended: true}, true
}

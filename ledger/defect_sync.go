//go:build defect_drop_sync_entry

package ledger

import "sync/atomic"

// A planted defect, for `testnet chaos`'s own test only: on each replica,
// the first sync entry of a sync served to a partner (a sync entry that
// names a partner) is acknowledged without being recorded, so the partner
// receives segments that no ledger holds. The checker must find the entry
// missing.

var defectDroppedSync atomic.Bool

func (l *Ledger) defectAppend(e *Entry) (Receipt, bool) {
	if e.Type != TypeSync || e.Partner == "" || !defectDroppedSync.CompareAndSwap(false, true) {
		return Receipt{}, false
	}
	size, _, err := l.TreeHead()
	if err != nil {
		return Receipt{}, false
	}
	return Receipt{Index: size, Appended: true}, true
}

func (l *Ledger) defectAdmit(*Entry) (Receipt, bool) { return Receipt{}, false }

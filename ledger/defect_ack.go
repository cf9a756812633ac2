//go:build defect_ack_uncommitted

package ledger

import "sync/atomic"

// A planted defect, for `testnet chaos`'s own test only: every third
// match_result append is acknowledged with the index it would get, and
// never committed. The checker must find the history not linearizable.

var defectResults atomic.Int64

func (l *Ledger) defectAppend(e *Entry) (Receipt, bool) {
	if e.Type != TypeMatchResult || defectResults.Add(1)%3 != 0 {
		return Receipt{}, false
	}
	size, _, err := l.TreeHead()
	if err != nil {
		return Receipt{}, false
	}
	return Receipt{Index: size, Appended: true}, true
}

func (l *Ledger) defectAdmit(*Entry) (Receipt, bool) { return Receipt{}, false }

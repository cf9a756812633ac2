//go:build !defect_ack_uncommitted && !defect_drop_match_in && !defect_drop_sync_entry

package ledger

// Planted defects (ledger/defect_*.go) are compiled in only under their
// build tags, for the test that shows `testnet chaos` catches them. Built
// without those tags, these hooks do nothing and cost nothing.

// defectAppend may acknowledge an append without committing it
// (defect_ack_uncommitted).
func (l *Ledger) defectAppend(*Entry) (Receipt, bool) { return Receipt{}, false }

// defectAdmit may admit a request without recording it
// (defect_drop_match_in).
func (l *Ledger) defectAdmit(*Entry) (Receipt, bool) { return Receipt{}, false }

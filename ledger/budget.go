package ledger

import (
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// BudgetUsed returns the amount reserved under a budget key, as this
// replica has applied it: key is a Reservation key, whose DAY segments name
// the UTC day of the latest entry (the day the last Admit used). It reads
// two keys of the state, whatever the size of the ledger, so a caller can
// say which budget refused a request (Admit says only ErrBudget).
func (l *Ledger) BudgetUsed(key string) (uint64, error) {
	if err := checkField(key); err != nil {
		return 0, fmt.Errorf("budget used: %w", err)
	}
	var used uint64
	err := l.db.View(func(txn *badger.Txn) error {
		t, err := getUint64(txn, keyTime)
		if err != nil {
			return err
		}
		used, err = getUint64(txn, pfxBudget+day(key, int64(t)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("budget used %s: %w", key, err)
	}
	return used, nil
}

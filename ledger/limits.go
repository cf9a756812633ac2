package ledger

import (
	"fmt"
)

// Limits on what a command may carry (docs/ledger-format.md, "Limits").
const (
	// MaxCommandID is the longest command ID, in bytes.
	MaxCommandID = 4096
	// MaxRecordValue is the largest record value Put stores, in bytes.
	MaxRecordValue = 10 << 20
	// MaxReservations is the most budget reservations of one admission.
	MaxReservations = 64
)

// ErrTooLarge is returned for a command over one of the limits above; it
// is an ErrInvalid. Nothing was written: split the record or shorten the ID.
var ErrTooLarge = fmt.Errorf("over a ledger limit (docs/ledger-format.md, Limits): %w", ErrInvalid)

package ledger

import (
	"fmt"
	"unicode/utf8"
)

// Entry is one audit record.
type Entry struct {
	Header
	Body   Body   `json:"body"`   // zero when Pruned
	Salt   Digest `json:"salt"`   // random per entry; zero when Pruned
	Pruned bool   `json:"pruned"` // the body and salt were deleted after the retention period
}

func headerStrings(h *Header) []string {
	return []string{h.RequestID, h.Agency, h.Partner, h.Kind, h.PolicyVersion, h.Handling, h.Replica, h.Mode, h.Reaches}
}

func bodyStrings(b *Body) []string {
	return []string{b.Actor, b.Approver, b.Purpose, b.LegalBasis, b.Offence, b.CaseRef}
}

func checkField(s string) error {
	if len(s) > MaxField {
		return fmt.Errorf("field of %d bytes, at most %d: %w", len(s), MaxField, ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("field is not UTF-8: %w", ErrInvalid)
	}
	return nil
}

// validate checks what the caller controls.
func (e *Entry) validate() error {
	if !e.Type.Valid() {
		return fmt.Errorf("entry type %d: %w", uint8(e.Type), ErrInvalid)
	}
	if !e.Outcome.Valid() {
		return fmt.Errorf("entry outcome %d: %w", uint8(e.Outcome), ErrInvalid)
	}
	for _, s := range append(headerStrings(&e.Header), bodyStrings(&e.Body)...) {
		if err := checkField(s); err != nil {
			return err
		}
	}
	return nil
}

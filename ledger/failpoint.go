//go:build !failpoints

package ledger

// failpoint marks a crash point (docs/ledger.md, "Crash points"). Built
// without the failpoints tag it does nothing and costs nothing.
func failpoint(string) {}

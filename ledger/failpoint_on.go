//go:build failpoints

package ledger

import (
	"os"
	"sync"
)

var armed = sync.OnceValue(func() string { return os.Getenv(failpointEnv) })

// failpoint marks a crash point (docs/ledger.md, "Crash points"). In a
// binary built with the failpoints tag, the point named by failpointEnv
// writes "failpoint NAME" on its own line to stdout and blocks the
// goroutine that reached it for good: the test that runs the binary then
// kills it with SIGKILL.
func failpoint(name string) {
	if name != armed() {
		return
	}
	os.Stdout.Write([]byte("failpoint " + name + "\n"))
	select {}
}

// Command xborder runs and drives an xborder node: the privacy-preserving
// exchange node that a national agency runs to match identifiers with
// partner agencies by private set intersection, with every query recorded
// in a replicated, tamper-evident audit ledger.
//
// It is the only place in the module that calls os.Exit. Exit codes:
//
//	0  ok
//	1  some input invalid
//	2  usage
//	3  denied by policy
//	4  unavailable (no quorum, partner unreachable)
//	5  verification failed
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// newDataCompactCmd is 'data compact': every replica erases from its disk
// what removals left there, and the ledger records it.
func newDataCompactCmd(e *env, cf *clientFlags, dir *string) *cobra.Command {
	return &cobra.Command{
		Use:   "compact",
		Short: "Make every replica erase removed identifiers from its disk now, and wait until it has",
		Long: `Compact makes every replica of the data group erase from its disk what
removals left there: one Raft snapshot kept (the older ones deleted), the
Raft log cut at it, badger's memory tables flushed, its tables compacted and
its value-log files with garbage rewritten (docs/holdings.md, "Removal and
erasure"). Every replica also does this on its own after each 'data remove';
compact asks again and waits, up to 45 seconds, until each replica has
recorded it done. The ledger records one 'remove' entry with the count of
replicas that compacted. Exit status 4 when a replica has not compacted
within the wait (it is down, or slow): it compacts when it can; run compact
again to check.`,
		Example: "  xborder data remove --kind phone gone.csv && xborder data compact",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := apiClient(cf, *dir)
			if err != nil {
				return err
			}
			res, err := cl.CompactData(c.Context())
			if err != nil {
				return apiError(err)
			}
			fmt.Fprintf(e.stdout, "compacted on %d replicas (%s); ledger entry %d\n", len(res.Compacted), strings.Join(res.Compacted, ", "), res.Index)
			if len(res.Pending) > 0 {
				return exitError(exitUnavailable, fmt.Errorf("data compact: not yet compacted on %s", strings.Join(res.Pending, ", ")),
					"a replica that is down compacts when it starts; run 'xborder data compact' again to check")
			}
			return nil
		},
	}
}

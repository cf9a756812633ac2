package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xborder/xborder/ledger/format"
)

// witnessKeys gathers the witness verifier keys of ledger verify: each
// --witness (a key, or a file holding one) and, with dir, the witness keys
// of the partners the node of that data directory pins (its API), leaving
// out the exporting agency's own (origin). Duplicates count once.
func witnessKeys(c *cobra.Command, cf *clientFlags, given []string, dir, origin string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(k string) error {
		k = strings.TrimSpace(k)
		if _, err := format.CosignatureVerifier(k); err != nil {
			return exitError(exitInvalid, fmt.Errorf("ledger verify: %w", err), "give a witness key as the partner's card or 'xborder partner list --json' shows it")
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
		return nil
	}
	for _, w := range given {
		if b, err := os.ReadFile(w); err == nil {
			w = string(b)
		}
		if err := add(w); err != nil {
			return nil, err
		}
	}
	if dir == "" {
		return out, nil
	}
	cl, err := apiClient(cf, dir)
	if err != nil {
		return nil, err
	}
	ps, err := cl.Partners(c.Context())
	if err != nil {
		return nil, apiError(err)
	}
	agency, _ := strings.CutPrefix(origin, "xborder.ledger/")
	for _, p := range ps {
		if p.Witness == "" || p.Agency == agency {
			continue
		}
		if err := add(p.Witness); err != nil {
			return nil, err
		}
	}
	return out, nil
}

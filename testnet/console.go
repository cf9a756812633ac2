package testnet

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// PrintConsole writes, per agency and role, a one-time sign-in link to the
// web console of the agency's first replica (docs/console.md), made with
// the agency's admin token as `xborder ui-link --user ROLE` makes it. Each
// link signs its role's user in once and expires after 15 minutes; a link
// that could not be made is named with the reason.
func (n *Net) PrintConsole(ctx context.Context, w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AGENCY\tROLE\tCONSOLE SIGN-IN LINK (one use within 15 minutes; or paste the role's token at /ui/)")
	for _, a := range n.Agencies {
		for _, role := range append([]string{"admin"}, userRoles...) {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Code, role, a.consoleLink(ctx, role))
		}
	}
	tw.Flush()
}

// consoleLink returns a one-time sign-in link for the user of role on the
// agency's first replica, or why there is none.
func (a *AgencyNode) consoleLink(ctx context.Context, role string) string {
	cl, err := a.Client(0, "admin")
	if err != nil {
		return "none: " + err.Error()
	}
	l, err := cl.ConsoleLink(ctx, role) // the user of each role is named after it (build.go)
	if err != nil {
		return "none: " + err.Error()
	}
	return strings.TrimSuffix(cl.BaseURL, "/") + l.Path
}

package node

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/xborder/xborder/internal/httpapi"
)

// TestPolicyDecidesAdminVerbs: once a policy is in force, Cedar decides the
// admin verbs (a forbid restricts the admin), and policy apply refuses files
// under which no user could manage the policy.
func TestPolicyDecidesAdminVerbs(t *testing.T) {
	noLeaks(t)
	n := startNode(t, "GB")
	ctx := context.Background()
	p, err := os.ReadFile("../examples/policy/policy.cedar")
	if err != nil {
		t.Fatal(err)
	}
	l, err := os.ReadFile("../examples/policy/limits.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := func(policy string) httpapi.PolicyFiles {
		return httpapi.PolicyFiles{PolicyName: "policy.cedar", Policy: policy, LimitsName: "limits.yaml", Limits: string(l)}
	}
	before := n.Policy().Version()
	// No permit for any admin verb: no one could manage the policy.
	if _, err := n.admin.ApplyPolicy(ctx, files(matchPolicy)); !errors.Is(err, httpapi.ErrBadRequest) || !strings.Contains(err.Error(), "manage_policy") {
		t.Errorf("ApplyPolicy(no admin permit) = %v; want a 400 saying no one could manage_policy", err)
	}
	if v := n.Policy().Version(); v != before {
		t.Errorf("version after a refused apply = %s; want %s kept", v, before)
	}
	// The examples with a forbid on the admin's user management: applied,
	// and then the admin may not add users but may still manage policy.
	restricted := string(p) + "\n@id(\"admin-no-users\")\n@reason(\"restricted\")\nforbid (principal == User::\"admin\", action == Action::\"manage_users\", resource);\n"
	if _, err := n.admin.ApplyPolicy(ctx, files(restricted)); err != nil {
		t.Fatalf("ApplyPolicy(examples restricting the admin): %v", err)
	}
	if _, err := n.admin.AddUser(ctx, "ivan", "investigator"); !errors.Is(err, httpapi.ErrForbidden) {
		t.Errorf("admin adds a user under a forbid: %v; want ErrForbidden", err)
	}
	if _, err := n.admin.ApplyPolicy(ctx, files(string(p))); err != nil {
		t.Errorf("admin applies the examples again: %v", err)
	}
	if _, err := n.admin.AddUser(ctx, "ivan", "investigator"); err != nil {
		t.Errorf("admin adds a user under the examples: %v", err)
	}
}

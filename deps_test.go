package xborder_test

import (
	"go/build"
	"os/exec"
	"path"
	"strings"
	"testing"
)

const module = "github.com/xborder/xborder"

// layers says, for each part of DESIGN.md ("Parts"), which of the module's
// packages it may import. Arrows point down only. A package under a part
// (ledger/x) belongs to that part; internal/NAME packages are listed by name.
// Any package of ours missing from this map fails the test, so a new package
// has to be placed in the layering on purpose.
var layers = map[string][]string{
	"ident":    {},
	"psi":      {},
	"policy":   {},
	"ledger":   {"ledger"},
	"exchange": {"exchange", "psi", "ident", "policy", "internal/wire"},
	"node": {"node", "exchange", "psi", "ident", "policy", "ledger",
		"internal/wire", "internal/httpapi", "internal/card"},
	"testnet": {"testnet", "node", "exchange", "psi", "ident", "policy", "ledger",
		"internal/wire", "internal/httpapi", "internal/card"},
	"cmd/xborder": {"cmd/xborder", "testnet", "node", "exchange", "psi", "ident", "policy", "ledger",
		"internal/wire", "internal/httpapi", "internal/card"},
	"internal/wire":    {"internal/wire"},
	"internal/httpapi": {"internal/httpapi", "ledger", "policy", "ident", "psi", "exchange"},
	"internal/card":    {"internal/card"},
	"":                 {}, // the root package holds only this test
}

// forbiddenExternal lists imports from outside the module that a part must
// not use: only node (and what sits above it) knows libp2p and HTTP.
var forbiddenExternal = map[string][]string{
	"ident":    {"github.com/libp2p/", "net/http", "github.com/hashicorp/raft", "github.com/dgraph-io/"},
	"psi":      {"github.com/libp2p/", "net/http", "github.com/hashicorp/raft", "github.com/dgraph-io/", "net", "os"},
	"policy":   {"github.com/libp2p/", "net/http", "github.com/hashicorp/raft", "github.com/dgraph-io/", "net", "os"},
	"ledger":   {"github.com/libp2p/", "github.com/cloudflare/circl"},
	"exchange": {"github.com/libp2p/", "net/http", "github.com/hashicorp/raft", "github.com/dgraph-io/"},
}

// part returns the layer a package path of ours belongs to.
func part(rel string) string {
	if rel == "" {
		return ""
	}
	parts := strings.Split(rel, "/")
	switch parts[0] {
	case "cmd":
		return "cmd/xborder"
	case "internal":
		if len(parts) > 1 {
			return "internal/" + parts[1]
		}
	}
	return parts[0]
}

func TestLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		from := part(rel)
		allowed, ok := layers[from]
		if !ok {
			t.Errorf("package %s is in no layer of deps_test.go: place it in DESIGN.md's layering", pkg)
			continue
		}
		bp, err := build.Import(pkg, ".", 0)
		if err != nil {
			t.Fatalf("import %s: %v", pkg, err)
		}
		// Tests may import more (test helpers); the rules are for the product.
		for _, imp := range bp.Imports {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				to := part(strings.TrimPrefix(strings.TrimPrefix(imp, module), "/"))
				if !contains(allowed, to) {
					t.Errorf("%s imports %s: %s may not import %s (DESIGN.md \"Parts\")", pkg, imp, from, to)
				}
				continue
			}
			for _, bad := range forbiddenExternal[from] {
				if imp == bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(imp, bad)) ||
					strings.HasPrefix(imp, bad+"/") && bad != "net" && bad != "os" {
					t.Errorf("%s imports %s: %s must not depend on %s (DESIGN.md \"Parts\")", pkg, imp, from, path.Clean(bad))
				}
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

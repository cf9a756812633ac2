package xborder_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// This file checks the direction of imports that DESIGN.md ("Parts and the
// direction of their imports") draws. The rules are a pure function, check,
// over an import graph; TestLayering feeds it the real graph from one
// `go list -deps -json` call, and TestRules feeds it small planted graphs to
// show that each rule catches what it is for.
//
// Only product imports count: a _test.go file may import more (test helpers).

const module = "github.com/xborder/xborder"

// layers says, for each part, which other parts of this module its packages
// may import directly. A part may always import its own packages. A package
// under a part (ledger/x) belongs to that part; internal/NAME and cmd/NAME are
// parts of their own. Arrows point down only, and each list holds everything
// below the part, so the lists are closed under import (TestLayerMap): what a
// part reaches through the parts it imports is also in its list.
//
// A package of ours whose part is missing here fails the test, so a new
// package has to be placed in the layering on purpose.
var layers = map[string][]string{
	".":        {}, // the root package holds only this test
	"ident":    {},
	"psi":      {},
	"policy":   {},
	"ledger":   {},
	"exchange": {"psi", "ident", "policy", "internal/wire"},
	"node": {"exchange", "psi", "ident", "policy", "ledger",
		"internal/wire", "internal/httpapi", "internal/card", "internal/console"},
	"testnet": {"node", "exchange", "psi", "ident", "policy", "ledger",
		"internal/wire", "internal/httpapi", "internal/card", "internal/console", "examples"},
	"cmd/xborder": {"testnet", "node", "exchange", "psi", "ident", "policy", "ledger",
		"internal/wire", "internal/httpapi", "internal/card", "internal/console", "examples"},
	"internal/wire":    {},
	"internal/httpapi": {"ledger", "policy", "ident", "psi", "exchange", "internal/wire"},
	"internal/card":    {},
	// The web console: a client of node through the small Backend it
	// declares, on the API's types (docs/console.md).
	"internal/console": {"internal/httpapi", "ledger", "policy", "ident", "psi", "exchange", "internal/wire"},
	// examples/policy (package policyexample) builds the example policy
	// files into the program for testnet; examples/deploy holds files and
	// their tests only.
	"examples": {},
}

// heavy are the dependencies only node (and what sits above it) may know:
// libp2p, badger, Raft and HTTP.
var heavy = []string{"github.com/libp2p", "github.com/dgraph-io/badger", "github.com/hashicorp/raft", "net/http"}

// unpure are the standard packages the code of a pure part must not import:
// files, processes, signals and the network.
var unpure = []string{"os", "os/exec", "os/signal", "net", "net/http", "net/url"}

// formatDeps are all that ledger/format may import besides the standard
// library and its own subpackages, so that an auditor's verifier builds from
// the standard library and x/mod (DESIGN.md "What comes next").
var formatDeps = []string{"golang.org/x/mod/sumdb", "github.com/transparency-dev/formats", "github.com/transparency-dev/merkle"}

// A rule holds for each scope: a package of ours and everything under it.
// It looks at the scope's dependency closure, the packages its packages
// import directly or through others, ours or not.
//
// own reports a forbidden import made by the code of a package of ours in
// the closure; deps reports a forbidden package anywhere in the closure. A
// standard package such as os arrives in every closure through fmt, and net
// arrives in ident's through btcutil, so "no os" can only be a rule for our
// own code; a heavy dependency must not arrive by any road.
type rule struct {
	scope []string
	own   func(path string) bool
	deps  func(path string, std bool) bool
	// must says what scope must not do with pkg, and what to do instead.
	must func(scope, pkg string) string
}

var rules = []rule{
	{
		// Listed first: where it and the pure rule both object to a
		// package, this message is the one shown.
		scope: []string{"ledger/format"},
		deps: func(p string, std bool) bool {
			return !std && !under(p, module+"/ledger/format") && !underAny(p, formatDeps)
		},
		must: func(scope, pkg string) string {
			return fmt.Sprintf("%s may import only the standard library, %s/..., %s/... and %s/..., so that an auditor's verifier builds without badger, Raft or libp2p; move what needs %s out of %s (DESIGN.md \"What comes next\")",
				scope, formatDeps[0], formatDeps[1], formatDeps[2], pkg, scope)
		},
	},
	{
		// The pure parts. Their own code imports none of unpure; no
		// road brings them os/exec, os/signal or a heavy dependency. os,
		// net and net/url may arrive through others (fmt, btcutil's
		// crypto/x509), which this rule cannot forbid. ledger/format is
		// named before it exists; a scope with no package is skipped.
		scope: []string{"psi", "ident", "policy", "ledger/format", "examples"},
		own:   func(p string) bool { return slices.Contains(unpure, p) },
		deps: func(p string, _ bool) bool {
			return underAny(p, heavy) || p == "os/exec" || p == "os/signal"
		},
		must: func(scope, pkg string) string {
			return fmt.Sprintf("%s must not import %s: it is pure, with no files, processes or network; let the caller hand it bytes or an io.Reader, or drop the dependency that brings %s in (DESIGN.md \"Parts\")",
				scope, family(pkg), family(pkg))
		},
	},
	{
		scope: []string{"exchange"},
		deps:  func(p string, _ bool) bool { return underAny(p, heavy) },
		must: func(scope, pkg string) string {
			return fmt.Sprintf("%s, and the internal packages it imports, must not import %s: it speaks over the Stream and Opener it is handed and node adapts libp2p, badger, Raft and HTTP to them; move the code that needs %s into node (DESIGN.md \"Parts\")",
				scope, family(pkg), family(pkg))
		},
	},
	{
		scope: []string{"ledger"},
		own:   func(p string) bool { return under(p, "net/http") },
		deps: func(p string, _ bool) bool {
			return under(p, "github.com/libp2p") || under(p, "github.com/cloudflare/circl")
		},
		must: func(scope, pkg string) string {
			return fmt.Sprintf("%s must not import %s: it knows no PSI, and only node knows libp2p and HTTP; take what it needs through Config (DESIGN.md \"Parts\")",
				scope, family(pkg))
		},
	},
}

// A graph is an import graph: the product imports of each package, and
// which packages are in the standard library.
type graph struct {
	imports  map[string][]string
	standard map[string]bool
}

// A violation is a broken rule, with the part (or scope) it is about.
type violation struct {
	part string
	msg  string
}

// check applies layers and rules to g and returns every violation, in a
// stable order.
func check(g graph) []violation {
	var ours []string
	for p := range g.imports {
		if isOurs(p) {
			ours = append(ours, p)
		}
	}
	slices.Sort(ours)

	var vs []violation
	// reported holds the imports (importer, imported) already reported.
	// Each wrong import is reported once, by the first check that forbids
	// it, and no later rule walks through it.
	reported := make(map[[2]string]bool)
	// The layers, on the direct imports of each package of ours. With the
	// map closed under import, this bounds every part's transitive imports
	// of this module too.
	for _, p := range ours {
		from := part(p)
		allowed, ok := layers[from]
		if !ok {
			vs = append(vs, violation{from, fmt.Sprintf("package %s is in no layer of deps_test.go: place part %s in DESIGN.md's \"Parts\" and in layers", p, from)})
			continue
		}
		for _, imp := range g.imports[p] {
			if !isOurs(imp) {
				continue
			}
			to := part(imp)
			if to == from || slices.Contains(allowed, to) {
				continue
			}
			reported[[2]string{p, imp}] = true
			vs = append(vs, violation{from, fmt.Sprintf("%s imports %s: %s may not import %s; %s (DESIGN.md \"Parts\": arrows point down only)",
				p, imp, from, to, mayOnly(from, allowed))})
		}
	}

	// The rules, on each scope's dependency closure, walked breadth first
	// so that each chain shown is a shortest one. The walk does not go
	// past a forbidden package: what it imports is its own affair. A
	// forbidden package is reported once per scope, by its first import.
	stopped := make(map[string]bool) // scope and package, reported
	for _, r := range rules {
		for _, s := range r.scope {
			var roots []string
			for _, p := range ours {
				if under(p, module+"/"+s) {
					roots = append(roots, p)
				}
			}
			parent := make(map[string]string)
			queue := roots
			for _, p := range roots {
				parent[p] = ""
			}
			report := func(from, imp string) {
				chain := []string{imp}
				for p := from; p != ""; p = parent[p] {
					chain = append(chain, p)
				}
				slices.Reverse(chain)
				vs = append(vs, violation{s, fmt.Sprintf("%s imports %s through %s: %s",
					s, imp, strings.Join(chain, " -> "), r.must(s, imp))})
			}
			for i := 0; i < len(queue); i++ {
				p := queue[i]
				for _, imp := range g.imports[p] {
					e := [2]string{p, imp}
					if reported[e] {
						continue
					}
					if isOurs(p) && r.own != nil && r.own(imp) {
						reported[e] = true
						report(p, imp)
						continue
					}
					k := s + " " + imp
					if stopped[k] {
						continue
					}
					if r.deps != nil && r.deps(imp, g.standard[imp]) {
						reported[e], stopped[k] = true, true
						report(p, imp)
						continue
					}
					if _, ok := parent[imp]; !ok {
						parent[imp] = p
						queue = append(queue, imp)
					}
				}
			}
		}
	}
	return vs
}

func TestLayering(t *testing.T) {
	g, err := goList("./...")
	if err != nil {
		t.Fatal(err)
	}
	byPart := make(map[string][]string)
	for p := range layers {
		byPart[p] = nil
	}
	for _, r := range rules {
		for _, s := range r.scope {
			if _, named := byPart[s]; named {
				continue
			}
			if _, in := g.imports[module+"/"+s]; !in {
				t.Logf("%s is not in this tree yet: its rules apply once it is", s)
			}
			byPart[s] = nil
		}
	}
	for _, v := range check(g) {
		byPart[v.part] = append(byPart[v.part], v.msg)
	}
	for _, p := range slices.Sorted(maps.Keys(byPart)) {
		t.Run(p, func(t *testing.T) {
			for _, msg := range byPart[p] {
				t.Error(msg)
			}
		})
	}
}

// TestLayerMap checks that layers is closed under import: if a may import b
// and b may import c, a may import c. Otherwise a would reach c through b
// while the map says it may not.
func TestLayerMap(t *testing.T) {
	for a, below := range layers {
		for _, b := range below {
			next, ok := layers[b]
			if !ok {
				t.Errorf("layers: %s may import %s, which is no part: add %s to layers", a, b, b)
				continue
			}
			for _, c := range next {
				if c != a && !slices.Contains(below, c) {
					t.Errorf("layers: %s may import %s, which may import %s, but %s may not: add %s to %s's list", a, b, c, a, c, a)
				}
			}
		}
	}
}

func TestRules(t *testing.T) {
	m := func(rel string) string { return module + "/" + rel }
	const (
		libp2pNet = "github.com/libp2p/go-libp2p/core/network"
		badger    = "github.com/dgraph-io/badger/v4"
		raft      = "github.com/hashicorp/raft"
		circl     = "github.com/cloudflare/circl/oprf"
		btcutil   = "github.com/btcsuite/btcd/btcutil"
		cedar     = "github.com/cedar-policy/cedar-go"
		tlog      = "github.com/transparency-dev/formats/log"
		note      = "golang.org/x/mod/sumdb/note"
	)
	// clean is a small tree shaped like the real one, with no violation.
	// As in the real one, os reaches every part through fmt, and net and
	// net/url reach ident through btcutil (crypto/x509): allowed, since
	// the pure parts' ban on them is for their own code.
	clean := func() graph {
		return graph{
			imports: map[string][]string{
				module:                        nil,
				m("psi"):                      {circl, "fmt"},
				m("ident"):                    {btcutil, "fmt"},
				m("policy"):                   {cedar, "fmt"},
				m("internal/wire"):            {"encoding/binary"},
				m("internal/card"):            {"crypto/ed25519"},
				m("internal/httpapi"):         {m("ledger"), m("policy"), "net/http"},
				m("exchange"):                 {"context", m("internal/wire"), m("policy"), m("psi")},
				m("ledger"):                   {m("ledger/raftbadger"), raft},
				m("ledger/raftbadger"):        {badger, raft},
				m("ledger/format"):            {"crypto/ed25519", tlog, note},
				m("node"):                     {m("exchange"), m("internal/card"), m("internal/httpapi"), m("ledger"), "github.com/libp2p/go-libp2p", "net/http", "os"},
				m("testnet"):                  {m("node"), m("examples/policy"), "os/exec"},
				m("examples/policy"):          {"embed", "io/fs"},
				m("cmd/xborder"):              {m("node"), m("testnet"), "os", "os/signal"},
				circl:                         {"golang.org/x/sys/cpu"},
				"golang.org/x/sys/cpu":        {"os"},
				btcutil:                       {"crypto/x509", "net"},
				cedar:                         {"fmt"},
				tlog:                          {note},
				note:                          {"crypto/ed25519"},
				badger:                        {"expvar"},
				raft:                          {"net"},
				"github.com/libp2p/go-libp2p": {libp2pNet},
				libp2pNet:                     {"net"},
				"fmt":                         {"os"},
				"crypto/x509":                 {"net", "net/url", "os"},
				"net":                         {"os"},
				"expvar":                      {"net/http"},
				"net/http":                    {"net", "net/url", "os"},
			},
			standard: map[string]bool{
				"context": true, "crypto/ed25519": true, "embed": true, "io/fs": true, "crypto/x509": true, "encoding/binary": true,
				"expvar": true, "fmt": true, "log/slog": true, "net": true, "net/http": true,
				"net/url": true, "os": true, "os/exec": true, "os/signal": true,
			},
		}
	}
	const parts = `(DESIGN.md "Parts")`
	pure := func(scope, what string) string {
		return scope + " must not import " + what + ": it is pure, with no files, processes or network; let the caller hand it bytes or an io.Reader, or drop the dependency that brings " + what + " in " + parts
	}
	tests := []struct {
		name  string
		plant func(g graph)
		want  []violation
	}{
		{"clean tree", func(graph) {}, nil},
		{
			"psi imports os/exec",
			func(g graph) { g.imports[m("psi")] = append(g.imports[m("psi")], "os/exec") },
			[]violation{{"psi", "psi imports os/exec through " + m("psi") + " -> os/exec: " + pure("psi", "os/exec")}},
		},
		{
			"policy imports os",
			func(g graph) { g.imports[m("policy")] = append(g.imports[m("policy")], "os") },
			[]violation{{"policy", "policy imports os through " + m("policy") + " -> os: " + pure("policy", "os")}},
		},
		{
			"ident/sub imports net/url",
			func(g graph) {
				g.imports[m("ident")] = append(g.imports[m("ident")], m("ident/sub"))
				g.imports[m("ident/sub")] = []string{"net/url"}
			},
			[]violation{{"ident", "ident imports net/url through " + m("ident/sub") + " -> net/url: " + pure("ident", "net/url")}},
		},
		{
			"ident reaches os/exec through a dependency",
			func(g graph) { g.imports[btcutil] = append(g.imports[btcutil], "os/exec") },
			[]violation{{"ident", "ident imports os/exec through " + m("ident") + " -> " + btcutil + " -> os/exec: " + pure("ident", "os/exec")}},
		},
		{
			// exchange, which imports policy, reaches net/http too, but
			// the import is reported once, by the rule listed first.
			"policy's dependency imports net/http",
			func(g graph) { g.imports[cedar] = append(g.imports[cedar], "net/http") },
			[]violation{{"policy", "policy imports net/http through " + m("policy") + " -> " + cedar + " -> net/http: " + pure("policy", "net/http")}},
		},
		{
			"exchange's dependency imports badger",
			func(g graph) {
				g.imports[m("exchange")] = append(g.imports[m("exchange")], "github.com/example/kv")
				g.imports["github.com/example/kv"] = []string{badger}
			},
			[]violation{{"exchange", "exchange imports " + badger + " through " + m("exchange") + " -> github.com/example/kv -> " + badger + ": exchange, and the internal packages it imports, must not import badger: it speaks over the Stream and Opener it is handed and node adapts libp2p, badger, Raft and HTTP to them; move the code that needs badger into node " + parts}},
		},
		{
			"internal/wire imports libp2p, and exchange imports internal/wire",
			func(g graph) { g.imports[m("internal/wire")] = append(g.imports[m("internal/wire")], libp2pNet) },
			[]violation{{"exchange", "exchange imports " + libp2pNet + " through " + m("exchange") + " -> " + m("internal/wire") + " -> " + libp2pNet + ": exchange, and the internal packages it imports, must not import libp2p: it speaks over the Stream and Opener it is handed and node adapts libp2p, badger, Raft and HTTP to them; move the code that needs libp2p into node " + parts}},
		},
		{
			"ledger imports internal/slogadapter",
			func(g graph) { g.imports[m("ledger")] = append(g.imports[m("ledger")], m("internal/slogadapter")) },
			[]violation{{"ledger", m("ledger") + " imports " + m("internal/slogadapter") + ": ledger may not import internal/slogadapter; ledger may import only its own packages, under ledger/: move what it needs there (DESIGN.md \"Parts\": arrows point down only)"}},
		},
		{
			"ledger/raftbadger imports exchange",
			func(g graph) {
				g.imports[m("ledger/raftbadger")] = append(g.imports[m("ledger/raftbadger")], m("exchange"))
			},
			[]violation{{"ledger", m("ledger/raftbadger") + " imports " + m("exchange") + ": ledger may not import exchange; ledger may import only its own packages, under ledger/: move what it needs there (DESIGN.md \"Parts\": arrows point down only)"}},
		},
		{
			"ledger reaches circl",
			func(g graph) { g.imports[m("ledger/raftbadger")] = append(g.imports[m("ledger/raftbadger")], circl) },
			[]violation{{"ledger", "ledger imports " + circl + " through " + m("ledger/raftbadger") + " -> " + circl + ": ledger must not import circl: it knows no PSI, and only node knows libp2p and HTTP; take what it needs through Config " + parts}},
		},
		{
			"ledger/format imports badger",
			func(g graph) { g.imports[m("ledger/format")] = append(g.imports[m("ledger/format")], badger) },
			[]violation{{"ledger/format", "ledger/format imports " + badger + " through " + m("ledger/format") + " -> " + badger + ": ledger/format may import only the standard library, golang.org/x/mod/sumdb/..., github.com/transparency-dev/formats/... and github.com/transparency-dev/merkle/..., so that an auditor's verifier builds without badger, Raft or libp2p; move what needs " + badger + " out of ledger/format (DESIGN.md \"What comes next\")"}},
		},
		{
			"ledger/format imports ledger, which reaches badger",
			func(g graph) { g.imports[m("ledger/format")] = append(g.imports[m("ledger/format")], m("ledger")) },
			[]violation{{"ledger/format", "ledger/format imports " + m("ledger") + " through " + m("ledger/format") + " -> " + m("ledger") + ": ledger/format may import only the standard library, golang.org/x/mod/sumdb/..., github.com/transparency-dev/formats/... and github.com/transparency-dev/merkle/..., so that an auditor's verifier builds without badger, Raft or libp2p; move what needs " + m("ledger") + " out of ledger/format (DESIGN.md \"What comes next\")"}},
		},
		{
			"ledger/format imports net/http",
			func(g graph) { g.imports[m("ledger/format")] = append(g.imports[m("ledger/format")], "net/http") },
			[]violation{{"ledger/format", "ledger/format imports net/http through " + m("ledger/format") + " -> net/http: " + pure("ledger/format", "net/http")}},
		},
		{
			"psi imports internal/wire",
			func(g graph) { g.imports[m("psi")] = append(g.imports[m("psi")], m("internal/wire")) },
			[]violation{{"psi", m("psi") + " imports " + m("internal/wire") + ": psi may not import internal/wire; psi may import only its own packages, under psi/: move what it needs there (DESIGN.md \"Parts\": arrows point down only)"}},
		},
		{
			"examples/policy reads files with os",
			func(g graph) { g.imports[m("examples/policy")] = append(g.imports[m("examples/policy")], "os") },
			[]violation{{"examples", "examples imports os through " + m("examples/policy") + " -> os: " + pure("examples", "os")}},
		},
		{
			"examples/policy imports testnet",
			func(g graph) { g.imports[m("examples/policy")] = append(g.imports[m("examples/policy")], m("testnet")) },
			[]violation{{"examples", m("examples/policy") + " imports " + m("testnet") + ": examples may not import testnet; examples may import only its own packages, under examples/: move what it needs there (DESIGN.md \"Parts\": arrows point down only)"}},
		},
		{
			"a new package in no layer",
			func(g graph) { g.imports[m("metrics")] = []string{"fmt"} },
			[]violation{{"metrics", "package " + m("metrics") + " is in no layer of deps_test.go: place part metrics in DESIGN.md's \"Parts\" and in layers"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := clean()
			tt.plant(g)
			got := check(g)
			if !slices.Equal(got, tt.want) {
				t.Errorf("check(%s) =\n%s\nwant\n%s", tt.name, show(got), show(tt.want))
			}
		})
	}
}

func show(vs []violation) string {
	if len(vs) == 0 {
		return "\tnothing"
	}
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "\t[%s] %s\n", v.part, v.msg)
	}
	return b.String()
}

// goList returns the product import graph of the packages matching
// patterns and all they depend on, from one go list call.
func goList(patterns ...string) (graph, error) {
	args := append([]string{"list", "-deps", "-json=ImportPath,Imports,Standard"}, patterns...)
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return graph{}, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := graph{imports: make(map[string][]string), standard: make(map[string]bool)}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return graph{}, fmt.Errorf("go list: decode: %v", err)
		}
		g.imports[p.ImportPath] = p.Imports
		g.standard[p.ImportPath] = p.Standard
	}
	g.standard["C"] = true // cgo's pseudo-package, imported by net and others
	return g, nil
}

// part returns the part a package of ours belongs to: "ledger" for ledger
// and ledger/x, "internal/wire" for internal/wire/x, "." for the root.
func part(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	if rel == "" {
		return "."
	}
	elems := strings.Split(rel, "/")
	if (elems[0] == "internal" || elems[0] == "cmd") && len(elems) > 1 {
		return elems[0] + "/" + elems[1]
	}
	return elems[0]
}

// mayOnly says what part may import, for a message.
func mayOnly(part string, allowed []string) string {
	if len(allowed) == 0 {
		return fmt.Sprintf("%s may import only its own packages, under %s/: move what it needs there", part, part)
	}
	return fmt.Sprintf("%s may import only its own packages and %s: move what it needs there or below", part, strings.Join(allowed, ", "))
}

// family names a forbidden package the way DESIGN.md does.
func family(pkg string) string {
	for _, f := range []struct{ prefix, name string }{
		{"github.com/libp2p", "libp2p"},
		{"github.com/dgraph-io/badger", "badger"},
		{"github.com/hashicorp/raft", "Raft"},
		{"github.com/cloudflare/circl", "circl"},
	} {
		if under(pkg, f.prefix) {
			return f.name
		}
	}
	return pkg
}

func isOurs(pkg string) bool { return under(pkg, module) }

// under reports whether pkg is prefix or a package below it.
func under(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

func underAny(pkg string, prefixes []string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return under(pkg, p) })
}

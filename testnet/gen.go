package testnet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// Agency is one agency of the testnet: the country codes of
// examples/policy/, in order.
type Agency struct {
	Code string `json:"code"` // ISO 3166 alpha-2, also the default region of its data
	Name string `json:"name"`
}

// Agencies lists the agencies a testnet can run, in the order of
// examples/policy/: --agencies N takes the first N.
var Agencies = []Agency{
	{"GB", "National Crime Agency"},
	{"TH", "Department of Special Investigation"},
	{"DE", "Bundeskriminalamt"},
	{"NL", "Nationale Politie"},
	{"FR", "Office central pour la répression de la traite des êtres humains"},
}

// Kinds are the identifier kinds of the synthetic holdings, with the share
// of an agency's rows that each gets (in per mille).
var kindShares = []struct {
	Kind  string
	Share int
}{
	{"phone", 350}, {"email", 200}, {"btc", 80}, {"eth", 80},
	{"iban", 120}, {"address", 80}, {"document", 90},
}

// KindNames returns the identifier kinds of the synthetic holdings.
func KindNames() []string {
	out := make([]string, len(kindShares))
	for i, k := range kindShares {
		out[i] = k.Kind
	}
	return out
}

// plant is a planted identifier while it is generated.
type plant struct {
	kind    string
	m       made
	holders []string
}

// plantedPerPair is how many identifiers of each kind every pair of
// agencies shares, for holdings of n rows per agency: at most 100, so that
// a query file (every planted identifier its agency holds, and as many
// decoys) stays within 1,024 values, where the example policy asks for no
// approver.
func plantedPerPair(n int) int {
	return max(3, min(n/2000, 100))
}

// Generate writes the synthetic holdings of agencies under dir (dir/
// holdings/CC/KIND.csv, a CSV file with the header "value"), the query
// files of the demo (dir/queries/CC/KIND.txt and KIND-spelling.txt, one
// identifier a line) and dir/truth.json, deterministically from seed, and
// returns the ground truth. n is the number of rows per agency.
func Generate(dir string, agencies []Agency, n int, seed uint64) (*Truth, error) {
	t := &Truth{Seed: seed, Holdings: n, Agencies: agencies}
	g := newGen(seed, 1)
	per := plantedPerPair(n)

	// Planted identifiers: every pair (i, j), i < j, shares per of each
	// kind, generated in the country of i.
	var plants []plant
	serials := map[string]uint64{}
	for i := range agencies {
		for j := i + 1; j < len(agencies); j++ {
			for _, k := range KindNames() {
				key := agencies[i].Code + "/" + k
				for range per {
					m := g.make(k, agencies[i].Code, rolePlanted, serials[key])
					serials[key]++
					plants = append(plants, plant{k, m, []string{agencies[i].Code, agencies[j].Code}})
				}
			}
		}
	}
	for _, p := range plants {
		sum := sha256.Sum256([]byte(p.m.canonical))
		t.Planted = append(t.Planted, Planted{Kind: p.kind, Canonical: p.m.canonical, SHA256: hex.EncodeToString(sum[:]), Holders: p.holders})
	}

	for ai, a := range agencies {
		for ki, ks := range kindShares {
			var mine []plant
			for _, p := range plants {
				if p.kind == ks.Kind && holds(p.holders, a.Code) {
					mine = append(mine, p)
				}
			}
			rows := max(n*ks.Share/1000, 1)
			file := filepath.Join(dir, "holdings", a.Code, ks.Kind+".csv")
			rng := rand.New(rand.NewPCG(seed, uint64(ai*100+ki)))
			if err := writeHoldings(file, g, a.Code, ks.Kind, rows, mine, rng); err != nil {
				return nil, err
			}
			t.Rows = append(t.Rows, Rows{Agency: a.Code, Kind: ks.Kind, File: file, Rows: rows + len(mine)})

			// The querier's files: every planted identifier it holds,
			// in its own spelling, and as many decoys nobody holds; and
			// the same planted identifiers in other spellings.
			var q, spelled []string
			for i, p := range mine {
				q = append(q, p.m.spell(a.Code, i))
				spelled = append(spelled, p.m.spell(a.Code, -1))
			}
			for i := range len(mine) {
				d := g.make(ks.Kind, a.Code, roleDecoy, serials["decoy/"+a.Code+"/"+ks.Kind])
				serials["decoy/"+a.Code+"/"+ks.Kind]++
				q = append(q, d.spell(a.Code, i))
			}
			rng.Shuffle(len(q), func(i, j int) { q[i], q[j] = q[j], q[i] })
			qdir := filepath.Join(dir, "queries", a.Code)
			if err := writeLines(filepath.Join(qdir, ks.Kind+".txt"), q); err != nil {
				return nil, err
			}
			if err := writeLines(filepath.Join(qdir, ks.Kind+"-spelling.txt"), spelled); err != nil {
				return nil, err
			}
		}
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "truth.json"), append(b, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return t, nil
}

// decoyBase is the first serial of Decoys, above the decoys that Generate
// puts in query files (at most a few thousand per kind).
const decoyBase = 100000

// Decoys returns count identifiers of kind that no agency holds, spelled
// by agency: padding for the demo's large queries.
func Decoys(seed uint64, agency, kind string, from uint64, count int) []string {
	g := newGen(seed, 2)
	out := make([]string, count)
	for i := range out {
		out[i] = g.make(kind, agency, roleDecoy, decoyBase+from+uint64(i)).spell(agency, i)
	}
	return out
}

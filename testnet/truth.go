package testnet

// Planted is one identifier that the generator put in the holdings of
// several agencies: the ground truth of the demo's matching checks.
type Planted struct {
	Kind      string   `json:"kind"`
	Canonical string   `json:"canonical"`
	SHA256    string   `json:"sha256"`  // hex SHA-256 of Canonical, searched for in ledger exports
	Holders   []string `json:"holders"` // agency codes, each holding it in its own spelling
}

// Truth is the ground truth of a generated federation, written to
// DIR/truth.json.
type Truth struct {
	Seed     uint64    `json:"seed"`
	Holdings int       `json:"holdings"` // rows per agency
	Agencies []Agency  `json:"agencies"`
	Rows     []Rows    `json:"rows"`
	Planted  []Planted `json:"planted"`
}

// Rows says how many rows of one kind an agency's holdings file has, and
// where the file is.
type Rows struct {
	Agency string `json:"agency"`
	Kind   string `json:"kind"`
	File   string `json:"file"`
	Rows   int    `json:"rows"`
}

// Expected returns the canonical identifiers of kind that both querier and
// partner hold: the hits a query by querier holding every planted
// identifier it knows must get from partner.
func (t *Truth) Expected(querier, partner, kind string) []string {
	var out []string
	for _, p := range t.Planted {
		if p.Kind == kind && holds(p.Holders, querier) && holds(p.Holders, partner) {
			out = append(out, p.Canonical)
		}
	}
	return out
}

// Known returns the planted identifiers of kind that agency holds.
func (t *Truth) Known(agency, kind string) []Planted {
	var out []Planted
	for _, p := range t.Planted {
		if p.Kind == kind && holds(p.Holders, agency) {
			out = append(out, p)
		}
	}
	return out
}

func holds(hs []string, a string) bool {
	for _, h := range hs {
		if h == a {
			return true
		}
	}
	return false
}

package testnet

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/xborder/xborder/ident"
)

func canon(t *testing.T, kind, v, region string) string {
	t.Helper()
	k, err := ident.ParseKind(kind)
	if err != nil {
		t.Fatalf("ParseKind(%q): %v", kind, err)
	}
	c, err := ident.Canonical(k, v, ident.Options{Region: region})
	if err != nil {
		t.Fatalf("Canonical(%s, %q, region %s): %v", kind, v, region, err)
	}
	return c
}

func readCSV(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	if len(recs) == 0 || recs[0][0] != "value" {
		t.Fatalf("%s: no header \"value\"", file)
	}
	var out []string
	for _, r := range recs[1:] {
		out = append(out, r[0])
	}
	return out
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestGenerate checks that every generated row is a valid identifier in
// its holder's region, that agencies share exactly the planted
// identifiers, and that query files canonicalise to the ground truth.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	agencies := Agencies[:5]
	truth, err := Generate(dir, agencies, 3000, 7)
	if err != nil {
		t.Fatal(err)
	}
	per := plantedPerPair(3000)
	if got, want := len(truth.Planted), per*len(KindNames())*len(agencies)*(len(agencies)-1)/2; got != want {
		t.Fatalf("planted %d identifiers; want %d", got, want)
	}
	// holders[kind][canonical] = agencies holding it.
	holders := map[string]map[string]map[string]bool{}
	for _, r := range truth.Rows {
		rows := readCSV(t, r.File)
		if len(rows) != r.Rows {
			t.Errorf("%s: %d rows; truth says %d", r.File, len(rows), r.Rows)
		}
		if holders[r.Kind] == nil {
			holders[r.Kind] = map[string]map[string]bool{}
		}
		for _, v := range rows {
			c := canon(t, r.Kind, v, r.Agency)
			if holders[r.Kind][c] == nil {
				holders[r.Kind][c] = map[string]bool{}
			}
			holders[r.Kind][c][r.Agency] = true
		}
	}
	planted := map[string]bool{}
	for _, p := range truth.Planted {
		planted[p.Kind+"|"+p.Canonical] = true
		for _, h := range p.Holders {
			if !holders[p.Kind][p.Canonical][h] {
				t.Errorf("planted %s %s: holder %s does not hold it", p.Kind, p.SHA256[:8], h)
			}
		}
		if n := len(holders[p.Kind][p.Canonical]); n != len(p.Holders) {
			t.Errorf("planted %s %s: held by %d agencies; want %d", p.Kind, p.SHA256[:8], n, len(p.Holders))
		}
	}
	for kind, m := range holders {
		for c, hs := range m {
			if len(hs) > 1 && !planted[kind+"|"+c] {
				t.Errorf("%s identifier held by %d agencies was not planted", kind, len(hs))
			}
		}
	}
	// Query files: the planted identifiers the querier holds, in its own
	// spelling or another, plus decoys nobody holds.
	for _, a := range agencies {
		for _, k := range KindNames() {
			var want []string
			for _, p := range truth.Known(a.Code, k) {
				want = append(want, p.Canonical)
			}
			got := map[string]bool{}
			for _, v := range readLines(t, filepath.Join(dir, "queries", a.Code, k+".txt")) {
				c := canon(t, k, v, a.Code)
				if planted[k+"|"+c] {
					got[c] = true
				} else if len(holders[k][c]) != 0 {
					t.Errorf("query %s/%s: a decoy is held by an agency", a.Code, k)
				}
			}
			if len(got) != len(want) {
				t.Errorf("query %s/%s: %d planted identifiers; want %d", a.Code, k, len(got), len(want))
			}
			spelled := readLines(t, filepath.Join(dir, "queries", a.Code, k+"-spelling.txt"))
			for i, v := range spelled {
				if c := canon(t, k, v, a.Code); c != want[i] {
					t.Errorf("spelling query %s/%s line %d: canonical %s; want the planted one", a.Code, k, i+1, k)
				}
			}
		}
	}
	for _, d := range Decoys(7, "TH", "btc", 0, 50) {
		if c := canon(t, "btc", d, "TH"); len(holders["btc"][c]) != 0 {
			t.Errorf("Decoys: a decoy is held by an agency")
		}
	}
	if got := truth.Expected("GB", "TH", "phone"); len(got) != per {
		t.Errorf("Expected(GB, TH, phone): %d; want %d", len(got), per)
	}
}

// TestGenerateDeterministic checks that one seed gives the same files.
func TestGenerateDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, err := Generate(d, Agencies[:2], 500, 42); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"holdings/GB/phone.csv", "holdings/TH/iban.csv", "queries/TH/email.txt"} {
		x, _ := os.ReadFile(filepath.Join(a, rel))
		y, _ := os.ReadFile(filepath.Join(b, rel))
		if len(x) == 0 || !reflect.DeepEqual(x, y) {
			t.Errorf("%s differs between two runs with one seed (or is empty)", rel)
		}
	}
	c := t.TempDir()
	if _, err := Generate(c, Agencies[:2], 500, 43); err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(filepath.Join(a, "holdings/GB/eth.csv"))
	y, _ := os.ReadFile(filepath.Join(c, "holdings/GB/eth.csv"))
	if reflect.DeepEqual(x, y) {
		t.Errorf("holdings/GB/eth.csv is the same for seeds 42 and 43")
	}
}

func TestEIP55(t *testing.T) {
	// The EIP-55 specification's examples.
	for _, want := range []string{
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
	} {
		raw := make([]byte, 20)
		for i := range raw {
			var v byte
			for _, c := range strings.ToLower(want[2+2*i : 4+2*i]) {
				v <<= 4
				if c >= 'a' {
					v |= byte(c-'a') + 10
				} else {
					v |= byte(c - '0')
				}
			}
			raw[i] = v
		}
		if got := eip55(raw); got != want {
			t.Errorf("eip55(%x) = %s; want %s", raw, got, want)
		}
	}
}

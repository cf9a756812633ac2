package testnet

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// writeHoldings writes rows generated holdings of kind for agency, with the
// planted identifiers mixed in at random places, as a CSV file.
func writeHoldings(file string, g *gen, agency, kind string, rows int, planted []plant, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("write holdings: %w", err)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("write holdings: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	w.WriteString("value\n")
	// Positions of the planted rows among all rows, in order.
	total := rows + len(planted)
	pos := make([]int, len(planted))
	for i := range pos {
		pos[i] = rng.IntN(total)
	}
	sort.Ints(pos)
	p, serial := 0, uint64(0)
	for i := range total {
		var v string
		if p < len(pos) && (pos[p] <= i || total-i == len(pos)-p) {
			v = planted[p].m.spell(agency, i)
			p++
		} else {
			v = g.make(kind, agency, roleHolding, serial).spell(agency, i)
			serial++
		}
		writeCSVField(w, v)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write holdings: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write holdings: %w", err)
	}
	return nil
}

// writeCSVField writes v as one CSV record of one field.
func writeCSVField(w *bufio.Writer, v string) {
	if strings.ContainsAny(v, ",\"\n\r") || strings.TrimSpace(v) != v {
		w.WriteString(`"` + strings.ReplaceAll(v, `"`, `""`) + `"` + "\n")
		return
	}
	w.WriteString(v + "\n")
}

func writeLines(file string, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

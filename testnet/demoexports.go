package testnet

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"index/suffixarray"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// exports exports every agency's ledger, verifies each offline, and
// searches them for every planted identifier.
func (d *demo) exports(ctx context.Context) {
	rep := d.rep
	rep.Step("Every agency's ledger is exported and verified offline",
		"The auditor exports through the API into DIR/exports/<agency>/; 'xborder ledger verify' checks signature, Merkle tree and every entry against the agency key.")
	var dirs []string
	for i, a := range d.net.Agencies {
		dir := filepath.Join(d.net.Dir(), "exports", a.Code)
		c, err := d.client(a, "auditor")
		var x httpapi.Export
		if err == nil {
			x, err = c.Export(ctx)
		}
		if err == nil {
			err = x.WriteDir(dir)
		}
		if !rep.Check(err == nil, a.Code+" exports its ledger", "%s", errText(err, dir)) {
			continue
		}
		dirs = append(dirs, dir)
		if d.cfg.Break == "export" && i == 0 {
			if err := flipByte(filepath.Join(dir, ledger.ExportEntries)); err != nil {
				rep.Check(false, "break the export", "%v", err)
			}
			rep.Note("one byte of %s's export was changed on purpose (--break export)", a.Code)
		}
		out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 5*time.Minute, "ledger", "verify", dir,
			"--key", filepath.Join(a.Replicas[0].Dir, "agency.pub"))
		rep.Check(err == nil && code == 0, a.Code+" export verifies offline", "%s",
			errText(err, strings.TrimSpace(firstLine(out)+" "+lastLineIf(code != 0, stderr))))
	}
	rep.Step("No ledger export holds a planted identifier",
		"Every canonical planted identifier, and its SHA-256 in hex and base64, is searched for in every export file.")
	var pats [][]byte
	for _, p := range d.net.Truth.Planted {
		sum := sha256.Sum256([]byte(p.Canonical))
		pats = append(pats, []byte(p.Canonical), []byte(hex.EncodeToString(sum[:])), []byte(base64.StdEncoding.EncodeToString(sum[:])))
	}
	for _, dir := range dirs {
		found, files, size, err := searchDir(dir, pats)
		rep.Check(err == nil && found == 0, filepath.Base(dir)+" export holds none", "%s",
			errText(err, fmt.Sprintf("%d files, %d bytes searched for %d patterns: %d found", files, size, len(pats), found)))
	}
}

func firstLine(s string) string {
	return strings.SplitN(strings.TrimSpace(s), "\n", 2)[0]
}

func lastLineIf(b bool, s string) string {
	if !b {
		return ""
	}
	return lastLine(s)
}

// flipByte changes one base64 character in the middle of an export's
// entries file, as a tamperer or a bad disk would.
func flipByte(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	i := strings.Index(string(b[len(b)/2:]), `"leaf":"`)
	if i < 0 {
		return fmt.Errorf("flip a byte of %s: no leaf in its second half", file)
	}
	j := len(b)/2 + i + len(`"leaf":"`) + 10
	if b[j] == 'A' {
		b[j] = 'B'
	} else {
		b[j] = 'A'
	}
	return os.WriteFile(file, b, 0o644)
}

// searchDir counts the patterns found in the files of dir.
func searchDir(dir string, pats [][]byte) (found, files int, size int64, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return found, files, size, err
		}
		files++
		size += int64(len(b))
		idx := suffixarray.New(b)
		for _, p := range pats {
			if len(idx.Lookup(p, 1)) > 0 {
				found++
			}
		}
	}
	return found, files, size, nil
}

package console

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/ledger/format"
)

// defaultPurpose is recorded in the read entry when the auditor gives no
// purpose.
const defaultPurpose = "console"

// maxListed bounds the entries one ledger page lists.
const maxListed = 500

// ledgerForm is the ledger page's filter, as the form sends it.
type ledgerForm struct {
	Type, From, To, Partner, Request, Purpose string
	Limit                                     int
}

type ledgerView struct {
	Form    ledgerForm
	Types   []string
	Entries []ledger.Entry
	Growth  plot
	PerDay  plot
	Queries plot
	Hits    plot
}

// ledgerPage lists the ledger, filtered by type, time, partner and
// request ID, with plots of what it lists.
func (c *Console) ledgerPage(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	fm := ledgerForm{Type: q.Get("type"), From: q.Get("from"), To: q.Get("to"), Partner: strings.ToUpper(q.Get("partner")),
		Request: q.Get("request"), Purpose: q.Get("purpose"), Limit: 100}
	if fm.Purpose == "" {
		fm.Purpose = defaultPurpose
	}
	var f ledger.Filter
	if fm.Type != "" {
		t, err := ledger.ParseType(fm.Type)
		if err != nil {
			return fmt.Errorf("type %q: %v: %w", fm.Type, err, httpapi.ErrBadRequest)
		}
		f.Types = []ledger.Type{t}
	}
	for _, d := range []struct {
		name, v string
		dst     *time.Time
	}{{"from", fm.From, &f.From}, {"to", fm.To, &f.To}} {
		if d.v == "" {
			continue
		}
		t, err := time.Parse("2006-01-02", d.v)
		if err != nil {
			return fmt.Errorf("%s %q is not a date (YYYY-MM-DD): %w", d.name, d.v, httpapi.ErrBadRequest)
		}
		if d.name == "to" {
			t = t.AddDate(0, 0, 1) // the whole day
		}
		*d.dst = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > maxListed {
			return fmt.Errorf("limit %q: give a number from 1 to %d: %w", v, maxListed, httpapi.ErrBadRequest)
		}
		fm.Limit = n
	}
	f.Partner = fm.Partner
	if fm.Request == "" {
		f.Limit = fm.Limit
	}
	if f.Types == nil && f.From.IsZero() && f.To.IsZero() && f.Partner == "" && fm.Request == "" {
		// No filter: the newest entries, from the newest checkpoint's size.
		if pub, err := c.b.Checkpoint(r.Context()); err == nil {
			if cp, err := format.ParseCheckpoint([]byte(pub.Checkpoint), c.cfg.LedgerKey); err == nil && cp.Size > uint64(fm.Limit) {
				f.After = cp.Size - uint64(fm.Limit)
			}
		}
	}
	es, err := c.b.Entries(r.Context(), r.user, fm.Purpose, f)
	if err != nil {
		return err
	}
	if fm.Request != "" {
		// The ledger filters by no request ID: the console does, on the
		// entries the rest of the filter selects.
		kept := es[:0]
		for _, e := range es {
			if e.RequestID == fm.Request {
				kept = append(kept, e)
			}
		}
		es = kept
		if len(es) > fm.Limit {
			es = es[:fm.Limit]
		}
	}
	v := ledgerView{Form: fm, Entries: es, Types: typeNames(), Growth: growthPlot(es), PerDay: perDayPlot(es)}
	v.Queries, v.Hits = partnerPlots(es)
	c.render(w, r.Request, http.StatusOK, "ledger", "Ledger", r, v)
	return nil
}

// typeNames lists the entry types the ledger knows.
func typeNames() []string {
	var out []string
	for t := format.Type(1); t.Valid(); t++ {
		out = append(out, t.String())
	}
	return out
}

type entryView struct {
	Entry ledger.Entry
	Proof httpapi.EntryProof
	Check proofCheck
	Note  string // the signed checkpoint the check used
	// Pending: the entry is newer than the newest signed checkpoint.
	Pending bool
	Purpose string
}

// entryPage shows one entry, its header and body, and verifies its
// inclusion proof against the newest signed checkpoint on the server
// (proof.go; the page says where and why).
func (c *Console) entryPage(w http.ResponseWriter, r *request) error {
	index, err := strconv.ParseUint(r.PathValue("index"), 10, 64)
	if err != nil {
		return fmt.Errorf("entry index %q is not a number: %w", r.PathValue("index"), httpapi.ErrBadRequest)
	}
	purpose := r.URL.Query().Get("purpose")
	if purpose == "" {
		purpose = defaultPurpose
	}
	pub, err := c.b.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	v := entryView{Note: pub.Checkpoint, Purpose: purpose}
	var size uint64
	if c.cfg.LedgerKey != "" {
		if cp, err := format.ParseCheckpoint([]byte(pub.Checkpoint), c.cfg.LedgerKey); err == nil {
			size = cp.Size
			v.Pending = index >= cp.Size
		}
	}
	if v.Pending {
		size = 0
	}
	p, err := c.b.EntryProof(r.Context(), r.user, purpose, index, size)
	if err != nil {
		return err
	}
	v.Entry, v.Proof = p.Entry, p
	if !v.Pending {
		v.Check = verifyEntry(c.cfg.LedgerKey, []byte(pub.Checkpoint), index, p)
	}
	c.render(w, r.Request, http.StatusOK, "entry", fmt.Sprintf("Entry %d", index), r, v)
	return nil
}

// export answers a zip of the ledger's export directory (checkpoint,
// ledger.pub, entries.jsonl), for `xborder ledger verify` after unzipping.
func (c *Console) export(w http.ResponseWriter, r *request) error {
	x, err := c.b.Export(r.Context(), r.user)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{format.ExportCheckpoint, x.Checkpoint},
		{format.ExportPublicKey, x.PublicKey}, {format.ExportEntries, x.Entries}} {
		fw, err := zw.Create("ledger-export/" + f.name)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(fw, f.body); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	name := fmt.Sprintf("ledger-%s-%s.zip", c.cfg.Agency, c.cfg.Now().UTC().Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	_, err = w.Write(buf.Bytes())
	return err
}

type checkpointsView struct {
	Key       string
	Latest    string
	LatestErr string
	Size      uint64
	Root      string
	Cosigned  string
	Cosigners []string
	CosignErr string
	Witnesses int
	Witness   *httpapi.WitnessStatus
}

// checkpointsPage shows the newest signed checkpoint, the newest one the
// partners cosigned with the witnesses whose cosignature verifies, and the
// witness alarms.
func (c *Console) checkpointsPage(w http.ResponseWriter, r *request) error {
	pub, err := c.b.Checkpoint(r.Context())
	if err != nil {
		return err
	}
	v := checkpointsView{Key: c.cfg.LedgerKey, Latest: pub.Checkpoint, Cosigned: pub.Cosigned, Witness: c.b.Status().Witness}
	if cp, err := format.ParseCheckpoint([]byte(pub.Checkpoint), c.cfg.LedgerKey); err != nil {
		v.LatestErr = err.Error()
	} else {
		v.Size, v.Root = cp.Size, fmt.Sprintf("%x", cp.Root[:])
	}
	if pub.Cosigned != "" {
		ps, err := c.b.Partners(r.Context())
		var keys []string
		for _, p := range ps {
			if p.Witness != "" {
				keys = append(keys, p.Witness)
			}
		}
		v.Witnesses = len(keys)
		if err == nil {
			v.Cosigners, err = format.Cosigners([]byte(pub.Cosigned), c.cfg.LedgerKey, keys)
		}
		if err != nil {
			v.CosignErr = err.Error()
		}
	}
	c.render(w, r.Request, http.StatusOK, "checkpoints", "Checkpoints", r, v)
	return nil
}

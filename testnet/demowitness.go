package testnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// witnessing shows partners cosigning each other's checkpoints
// (docs/witness.md): every agency's export verifies with a quorum of its
// partners' cosignatures; then one agency's replica directories are rolled
// back to an earlier copy and restarted, its partners' witnesses refuse
// its regrown ledger and raise the alarm, and 'ledger verify --quorum'
// fails on its export.
func (d *demo) witnessing(ctx context.Context) {
	rep := d.rep
	if len(d.net.Agencies) < 2 {
		rep.Step("Witnessing", "")
		rep.Note("one agency has no partner to witness it: witnessing needs --agencies 2 or more")
		return
	}
	quorum := len(d.net.Agencies) - 1
	rep.Step("Every agency's export verifies with a quorum of partner cosignatures",
		fmt.Sprintf("'xborder ledger verify DIR --witnesses-from-dir R1 --quorum %d': the export's checkpoint carries a cosignature/v1 of every partner's witness, checked against the witness keys of the pinned cards.", quorum))
	for i, a := range d.net.Agencies {
		if d.cfg.Break == "export" && i == 0 {
			rep.Note("%s's export was changed on purpose (--break export): its cosignatures are not checked", a.Code)
			continue
		}
		dir := filepath.Join(d.net.Dir(), "exports", a.Code)
		code, line := d.verifyQuorum(ctx, a, dir, quorum)
		rep.Check(code == 0, fmt.Sprintf("%s export has %d partner cosignatures", a.Code, quorum), "%s", line)
	}

	x := d.net.Agencies[len(d.net.Agencies)-1]
	rep.Step(fmt.Sprintf("%s's ledger is rolled back; its partners' witnesses refuse it", x.Code),
		"Its replicas stop and their directories are copied; the ledger grows and is exported (the partners cosign it); the replicas stop again, the copies are put back and started, the ledger regrows past the size the partners cosigned with other entries, and is exported again.")
	backup := filepath.Join(d.net.Dir(), "rollback", x.Code)
	err := d.restartAgency(ctx, x, func(r *Replica) error { return copyDir(r.Dir, filepath.Join(backup, r.ID)) })
	if !rep.Check(err == nil, x.Code+" replica directories copied", "%s", errText(err, backup)) {
		return
	}
	before, err := d.auditSize(ctx, x)
	if err == nil {
		err = d.readLedger(ctx, x, 3)
	}
	cosigned := filepath.Join(d.net.Dir(), "exports-witness", x.Code+"-before")
	var size uint64
	if err == nil {
		size, err = d.exportTo(ctx, x, cosigned)
	}
	if !rep.Check(err == nil, x.Code+" grows and exports", "%s", errText(err, fmt.Sprintf("%d entries at the copy, %d exported", before, size))) {
		return
	}
	code, line := d.verifyQuorum(ctx, x, cosigned, quorum)
	rep.Check(code == 0, x.Code+" export of "+strconv.FormatUint(size, 10)+" entries is cosigned", "%s", line)

	err = d.restartAgency(ctx, x, func(r *Replica) error {
		if err := os.RemoveAll(r.Dir); err != nil {
			return err
		}
		return copyDir(filepath.Join(backup, r.ID), r.Dir)
	})
	now, serr := d.auditSize(ctx, x)
	if err == nil {
		err = serr
	}
	if !rep.Check(err == nil && now < size, x.Code+" restarted from the copies", "%s",
		errText(err, fmt.Sprintf("its ledger has %d entries again, its partners cosigned %d", now, size))) {
		return
	}
	var forkedSize uint64
	forked := filepath.Join(d.net.Dir(), "exports-witness", x.Code+"-forked")
	err = d.readLedger(ctx, x, int(size-now)+1)
	if err == nil {
		forkedSize, err = d.exportTo(ctx, x, forked)
	}
	rep.Check(err == nil && forkedSize > size, x.Code+" regrows past the cosigned size with other entries", "%s",
		errText(err, fmt.Sprintf("%d entries exported", forkedSize)))
	for _, p := range d.net.Agencies {
		if p == x {
			continue
		}
		var st httpapi.Status
		err := poll(ctx, 30*time.Second, func() error {
			c, err := d.client(p, "admin")
			if err == nil {
				st, err = c.Status(ctx)
			}
			if err == nil && (st.Witness == nil || st.Witness.Alarms == 0) {
				err = errors.New("no witness alarm")
			}
			return err
		})
		what := ""
		if err == nil {
			what = fmt.Sprintf("%d alarm(s): %s", st.Witness.Alarms, st.Witness.LastAlarm)
		}
		rep.Check(err == nil, p.Code+"'s witness refuses "+x.Code+" and raises the alarm", "%s", errText(err, what))
	}
	var es []ledger.Entry
	c, err := d.client(x, "auditor")
	if err == nil {
		es, err = c.Entries(ctx, "witness demo", ledger.Filter{Types: []ledger.Type{ledger.TypeWitness}})
	}
	rep.Check(err == nil && len(es) > 0, x.Code+" records the witnesses' refusal itself", "%s",
		errText(err, fmt.Sprintf("%d witness_alarm entries in its own ledger", len(es))))
	code, line = d.verifyQuorum(ctx, x, forked, quorum)
	rep.Check(code == 5, "'ledger verify --quorum' fails on the forked export", "exit %d: %s", code, line)
}

// verifyQuorum runs ledger verify with a quorum of the witness keys a's
// node pins, and returns its exit code and the line that says why.
func (d *demo) verifyQuorum(ctx context.Context, a *AgencyNode, dir string, quorum int) (int, string) {
	out, code, stderr, err := runVerbCode(ctx, d.net.Binary(), 5*time.Minute, "ledger", "verify", dir,
		"--key", filepath.Join(a.Replicas[0].Dir, "agency.pub"), "--witnesses-from-dir", a.Replicas[0].Dir,
		"--quorum", strconv.Itoa(quorum), "--api", d.api(a), "--token-file", a.Tokens["admin"])
	if err != nil {
		return -1, err.Error()
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "witnesses:") {
			return code, l
		}
	}
	return code, firstLine(stderr)
}

// restartAgency stops a's running replicas, runs between on each, and
// starts them again.
func (d *demo) restartAgency(ctx context.Context, a *AgencyNode, between func(*Replica) error) error {
	var was []*Replica
	for _, r := range a.Replicas {
		if r.Running() {
			was = append(was, r)
			r.proc.stop(20 * time.Second)
		}
	}
	for _, r := range was {
		if err := between(r); err != nil {
			return err
		}
	}
	for _, r := range was {
		if err := d.net.startReplica(ctx, a, r); err != nil {
			return err
		}
	}
	for _, r := range was {
		if err := d.net.waitReady(ctx, a, r); err != nil {
			return err
		}
	}
	return nil
}

// auditSize returns the size of a's audit ledger.
func (d *demo) auditSize(ctx context.Context, a *AgencyNode) (uint64, error) {
	var size uint64
	err := poll(ctx, 30*time.Second, func() error {
		c, err := d.client(a, "admin")
		if err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		for _, g := range st.Groups {
			if g.Name == "audit" && g.Quorum {
				size = g.Size
				return nil
			}
		}
		return errors.New("audit group without quorum")
	})
	return size, err
}

// readLedger makes n auditor reads of a's ledger: each is an entry.
func (d *demo) readLedger(ctx context.Context, a *AgencyNode, n int) error {
	c, err := d.client(a, "auditor")
	if err != nil {
		return err
	}
	for i := 0; i < n && i < 500; i++ {
		if _, err := c.Entries(ctx, "witness demo", ledger.Filter{Limit: 1}); err != nil {
			return err
		}
	}
	return nil
}

// exportTo exports a's ledger into dir and returns its size.
func (d *demo) exportTo(ctx context.Context, a *AgencyNode, dir string) (uint64, error) {
	c, err := d.client(a, "auditor")
	if err != nil {
		return 0, err
	}
	x, err := c.Export(ctx)
	if err != nil {
		return 0, err
	}
	if err := x.WriteDir(dir); err != nil {
		return 0, err
	}
	lines := strings.SplitN(x.Checkpoint, "\n", 3)
	if len(lines) < 2 {
		return 0, errors.New("export without a checkpoint")
	}
	return strconv.ParseUint(lines[1], 10, 64)
}

// copyDir copies the tree at src to dst, keeping file modes.
func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		info, err := e.Info()
		if err != nil {
			return err
		}
		if e.IsDir() {
			return os.MkdirAll(to, info.Mode().Perm())
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, info.Mode().Perm())
	})
}

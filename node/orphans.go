package node

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xborder/xborder/ledger"
)

// Orphan batches: an import stores each batch as a data-group record
// (ImportRows) and only CommitImport makes a manifest reference them. The
// batches of an import that was abandoned (the client gave up or died, or
// the replica holding the session stopped), and a batch whose Put failed
// without a quorum but committed later, are referenced by no manifest:
// they are orphans. They are not held (kindIndex, DataStats), and the
// data group's leader deletes them once their import cannot be open on
// any replica any more.

const (
	// ImportIdle is how long an import session stays open on its replica
	// without a call (rows or commit); after it the replica closes it and
	// the client must start again.
	ImportIdle = time.Hour
	// ImportLifetime is the longest an import session stays open after it
	// began, however active: a 1,000,000-row import takes minutes.
	ImportLifetime = 24 * time.Hour
	// OrphanAge is the age (from the start time in its import ID) after
	// which a batch that no manifest references is deleted: an hour past
	// ImportLifetime, for the clocks of the replicas (which agree within
	// two minutes) and a commit in flight when the lifetime ended.
	OrphanAge = ImportLifetime + time.Hour
	// orphanInterval is how often the data group's leader looks for
	// orphan batches (one scan of the batch records).
	orphanInterval = 5 * time.Minute
	// orphanDeletes bounds the deletions of one pass; the rest wait for
	// the next.
	orphanDeletes = 64
)

// expired reports whether the session outlived ImportIdle or
// ImportLifetime at now.
func (s *importSession) expired(now time.Time) bool {
	return now.Sub(s.active) > ImportIdle || now.Sub(s.started) > ImportLifetime
}

// closeSession forgets an import session of this replica: other imports
// no longer de-duplicate against its rows (they are held only if it was
// committed, which moved them into the index first). The caller holds
// n.hold.mu.
func (n *Node) closeSession(s *importSession) {
	delete(n.hold.imports, s.id)
}

// dropAhead forgets the outputs computed ahead for the batches of an
// abandoned import (any epoch).
func (n *Node) dropAhead(s *importSession) {
	pfx := s.kind + "/" + s.id + "/"
	n.ahead.mu.Lock()
	defer n.ahead.mu.Unlock()
	for k, set := range n.ahead.sets {
		// aheadKey: kind/epoch/batch, batch: kind/import/number.
		if _, batch, ok := strings.Cut(strings.TrimPrefix(k, s.kind+"/"), "/"); ok && strings.HasPrefix(batch, pfx) {
			delete(n.ahead.sets, k)
			n.ahead.held -= len(set.outs)
		}
	}
}

// splitBatchKey splits a batch key <kind>/<import ID>/<batch>.
func splitBatchKey(key string) (kind, id string, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// importStart returns the start time an import ID carries (its first 16
// hex digits: UnixNano at BeginImport).
func importStart(id string) (time.Time, bool) {
	if len(id) < 16 {
		return time.Time{}, false
	}
	ns, err := strconv.ParseUint(id[:16], 16, 63)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(ns)), true
}

// countRows counts the rows of a batch record without decoding them.
func countRows(b []byte) (int, error) {
	c := 0
	for len(b) > 0 {
		for range 2 {
			n, k := binary.Uvarint(b)
			if k <= 0 || n > uint64(len(b)-k) {
				return c, errRows
			}
			b = b[k+int(n):]
		}
		c++
	}
	return c, nil
}

// orphanMetrics count orphan batches and their rows.
type orphanMetrics struct {
	found   *prometheus.GaugeVec   // by unit: batches, rows
	deleted *prometheus.CounterVec // by unit: batches, rows
}

// orphanMetrics registers the metrics on first use.
func (n *Node) orphanMetrics() *orphanMetrics {
	n.hold.mu.Lock()
	defer n.hold.mu.Unlock()
	if n.hold.omet == nil {
		m := &orphanMetrics{
			found: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_import_orphans",
				Help: "Orphan batches (of imports abandoned before their commit, older than the import lifetime) and their rows, found by the data group leader's last pass."},
				[]string{"unit"}),
			deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xborder_import_orphans_deleted_total",
				Help: "Orphan batches and their rows deleted from the data group by this replica."}, []string{"unit"}),
		}
		n.met.reg.MustRegister(m.found, m.deleted)
		for _, u := range []string{"batches", "rows"} {
			m.found.WithLabelValues(u)
			m.deleted.WithLabelValues(u)
		}
		n.hold.omet = m
	}
	return n.hold.omet
}

// collectOrphans runs on every replica in the holdings' background loop:
// it closes the import sessions of this replica that outlived ImportIdle
// or ImportLifetime, and on the data group's leader, at most once per
// orphanInterval, deletes up to orphanDeletes batches that no manifest
// references and whose import began more than OrphanAge ago (never one
// of an import open on this replica). A Delete of a record already gone
// is harmless, so a pass cut short or repeated by a new leader is too.
func (n *Node) collectOrphans() {
	m := n.orphanMetrics()
	now := n.now()
	open := map[string]bool{}
	n.hold.mu.Lock()
	for _, s := range n.hold.imports {
		if s.expired(now) {
			n.closeSession(s)
			n.dropAhead(s)
			n.log.Info("import closed unfinished", "kind", s.kind, "import", s.id, "batches", len(s.batches))
			continue
		}
		open[s.id] = true
	}
	due := now.Sub(n.hold.orphansAt) >= orphanInterval
	if due {
		n.hold.orphansAt = now
	}
	n.hold.mu.Unlock()
	if !due || n.data.Status().State != "Leader" {
		return
	}
	held, err := n.referenced("")
	if err != nil {
		n.log.Warn("look for orphan batches", "err", err)
		return
	}
	type orphan struct {
		key  string
		rows int
	}
	var victims []orphan
	batches, rows := 0, 0
	err = n.data.Scan(nsRows, "", func(key string, v []byte) error {
		_, id, ok := splitBatchKey(key)
		if !ok || open[id] {
			return nil
		}
		if _, ok := held[key]; ok {
			return nil
		}
		start, ok := importStart(id)
		if !ok || now.Sub(start) < OrphanAge {
			return nil
		}
		c, _ := countRows(v)
		batches, rows = batches+1, rows+c
		if len(victims) < orphanDeletes {
			victims = append(victims, orphan{key, c})
		}
		return nil
	})
	if err != nil {
		n.log.Warn("look for orphan batches", "err", err)
		return
	}
	m.found.WithLabelValues("batches").Set(float64(batches))
	m.found.WithLabelValues("rows").Set(float64(rows))
	deleted, drows := 0, 0
	for _, o := range victims {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := n.commit(GroupData, "delete", func() (ledger.Receipt, error) {
			return n.data.Delete(ctx, nsRows, o.key)
		})
		cancel()
		if err != nil {
			n.log.Warn("delete orphan batch", "err", err)
			break
		}
		deleted, drows = deleted+1, drows+o.rows
		m.deleted.WithLabelValues("batches").Inc()
		m.deleted.WithLabelValues("rows").Add(float64(o.rows))
	}
	if batches > 0 {
		n.log.Info("orphan batches of abandoned imports", "found", batches, "rows", rows, "deleted", deleted, "rows_deleted", drows)
	}
}

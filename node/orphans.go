package node

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
// h.mu.
func (h *holdings) closeSession(s *importSession) {
	delete(h.imports, s.id)
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

// orphanMetrics count orphan batches and their rows.
type orphanMetrics struct {
	found   *prometheus.GaugeVec   // by unit: batches, rows
	deleted *prometheus.CounterVec // by unit: batches, rows
}

func newOrphanMetrics(reg *prometheus.Registry) *orphanMetrics {
	m := &orphanMetrics{
		found: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "xborder_import_orphans",
			Help: "Orphan batches (of imports abandoned before their commit, older than the import lifetime) and their rows, found by the data group leader's last pass."},
			[]string{"unit"}),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "xborder_import_orphans_deleted_total",
			Help: "Orphan batches and their rows deleted from the data group by this replica."}, []string{"unit"}),
	}
	if reg != nil {
		reg.MustRegister(m.found, m.deleted)
	}
	for _, u := range []string{"batches", "rows"} {
		m.found.WithLabelValues(u)
		m.deleted.WithLabelValues(u)
	}
	return m
}

// orphanLoop collects orphans (collectOrphans) every interval until
// Close.
func (h *holdings) orphanLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.collectOrphans()
	}
}

// collectOrphans runs on every replica in the orphan loop:
// it closes the import sessions of this replica that outlived ImportIdle
// or ImportLifetime, and on the data group's leader, at most once per
// orphanInterval, deletes up to orphanDeletes batches that no manifest
// references and whose import began more than OrphanAge ago (never one
// of an import open on this replica). A Delete of a record already gone
// is harmless, so a pass cut short or repeated by a new leader is too.
func (h *holdings) collectOrphans() {
	m := h.omet
	now := h.now()
	open := map[string]bool{}
	h.mu.Lock()
	for _, s := range h.imports {
		if s.expired(now) {
			h.closeSession(s)
			h.sets.dropAhead(s.kind, s.id)
			h.log.Info("import closed unfinished", "kind", s.kind, "import", s.id, "batches", len(s.batches))
			continue
		}
		open[s.id] = true
	}
	due := now.Sub(h.orphansAt) >= orphanInterval
	if due {
		h.orphansAt = now
	}
	h.mu.Unlock()
	if !due || h.data.Status().State != "Leader" {
		return
	}
	held, err := h.referenced("")
	if err != nil {
		h.log.Warn("look for orphan batches", "err", err)
		return
	}
	type orphan struct {
		key  string
		rows int
	}
	var victims []orphan
	batches, rows := 0, 0
	err = h.data.Scan(nsRows, "", func(key string, v []byte) error {
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
		h.log.Warn("look for orphan batches", "err", err)
		return
	}
	m.found.WithLabelValues("batches").Set(float64(batches))
	m.found.WithLabelValues("rows").Set(float64(rows))
	deleted, drows := 0, 0
	for _, o := range victims {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := h.data.Delete(ctx, nsRows, o.key)
		cancel()
		if err != nil {
			h.log.Warn("delete orphan batch", "err", err)
			break
		}
		deleted, drows = deleted+1, drows+o.rows
		m.deleted.WithLabelValues("batches").Inc()
		m.deleted.WithLabelValues("rows").Add(float64(o.rows))
	}
	if batches > 0 {
		h.log.Info("orphan batches of abandoned imports", "found", batches, "rows", rows, "deleted", deleted, "rows_deleted", drows)
	}
}

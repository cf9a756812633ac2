package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xborder/xborder/ledger"
)

// nsErase holds the erasure requests and what each replica did of them:
// key "last", the ID of the latest removal, `data compact` or sweep of
// expired follow-up tags (UnixNano of its time, in decimal); key "done/<replica>", the latest ID that replica
// has compacted its data group for. Every replica compacts once it has
// applied a new "last" (eraseLoop), then records "done/<replica>".
const nsErase = "erase"

// kickErase makes the erase loop look for a new removal now.
func (h *holdings) kickErase() {
	select {
	case h.erase <- struct{}{}:
	default:
	}
}

// eraseQuiet is how long an erasure request must stay the latest before a
// replica compacts for it: a removal of a large file is many RemoveRows
// calls, each a request, and one compaction after the last is enough (a
// compaction meanwhile would compete with the removal's writes).
const eraseQuiet = 2 * time.Second

// eraseLoop compacts the data group on this replica (ledger.Compact: one
// snapshot, log truncation, memory tables flushed, LSM flattened, value
// logs rewritten) once a new erasure request has been applied and stayed
// the latest for eraseQuiet: RemoveRows, CompactData and the sweep of
// expired follow-up tags (hitStore) put one, and every replica watches it
// (docs/holdings.md). A replica that is down compacts when it starts. It
// runs until Close.
func (h *holdings) eraseLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	done := localString(h.local, "erased")
	reported, seen := "", ""
	var seenAt time.Time
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		case <-h.erase:
		}
		v, err := h.data.Get(nsErase, "last")
		if err != nil {
			continue
		}
		if string(v) != seen {
			seen, seenAt = string(v), time.Now()
		}
		if string(v) != done && time.Since(seenAt) >= eraseQuiet {
			start := time.Now()
			st, err := h.data.Compact()
			if errors.Is(err, ledger.ErrCompactLater) {
				h.log.Debug("erase removed holdings at the next tick", "err", err)
				continue
			} else if err != nil {
				h.log.Warn("erase removed holdings", "err", err)
				continue
			}
			done = string(v)
			if err := setLocalString(h.local, "erased", done); err != nil {
				h.log.Warn("write local store", "err", err)
			}
			h.log.Info("removed holdings erased from disk", "seconds", time.Since(start).Seconds(),
				"snapshot_index", st.SnapshotIndex, "snapshots_deleted", st.SnapshotsDeleted,
				"value_logs_rewritten", st.ValueLogsRewritten)
		}
		if reported == done {
			continue
		}
		if r, err := h.data.Get(nsErase, "done/"+h.replica); err == nil && string(r) == done {
			reported = done
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := h.data.Put(ctx, nsErase, "done/"+h.replica, []byte(done)); err != nil {
			h.log.Warn("record the erasure done", "err", err)
		} else {
			reported = done
		}
		cancel()
	}
}

// requestErase puts a new erasure request and wakes this replica's loop;
// it returns the request's ID.
func (h *holdings) requestErase(ctx context.Context) (string, error) {
	id := fmt.Sprintf("%d", h.now().UnixNano())
	if _, err := h.data.Put(ctx, nsErase, "last", []byte(id)); err != nil {
		return "", err
	}
	h.kickErase()
	return id, nil
}

package node

import "time"

// nsErase: key "last"; value: the ID of the latest removal. Every replica
// compacts its data group once it has applied a new one.
const nsErase = "erase"

// kickErase makes the erase loop look for a new removal now.
func (h *holdings) kickErase() {
	select {
	case h.erase <- struct{}{}:
	default:
	}
}

// eraseLoop compacts the data group on this replica (snapshot, log
// truncation, badger GC) whenever a removal was applied: RemoveRows puts
// a new erase record after rewriting the batches, and every replica
// watches it (docs/holdings.md). It runs until Close.
func (h *holdings) eraseLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	done := localString(h.local, "erased")
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		case <-h.erase:
		}
		v, err := h.data.Get(nsErase, "last")
		if err != nil || string(v) == done {
			continue
		}
		start := time.Now()
		if err := h.data.Compact(); err != nil {
			h.log.Warn("erase removed holdings", "err", err)
			continue
		}
		done = string(v)
		if err := setLocalString(h.local, "erased", done); err != nil {
			h.log.Warn("write local store", "err", err)
		}
		h.log.Info("removed holdings erased from disk", "seconds", time.Since(start).Seconds())
	}
}

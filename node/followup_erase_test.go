package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// tagForms returns the forms a follow-up tag could take on disk: its
// bytes, hex, and base64 (as encoding/json writes a []byte).
func tagForms(tag []byte) [][]byte {
	return [][]byte{slices.Clone(tag), []byte(hex.EncodeToString(tag)), []byte(base64.StdEncoding.EncodeToString(tag))}
}

// TestFollowupHitsErased: the tags of a query's hits, kept for the
// follow-up window on a 3-replica querier (the query run on a follower),
// are served by every replica before the window closes; after it closes,
// the sweep deletes them and requests an erasure, every replica compacts,
// and then no file of any querier replica, as one holding the storage key
// reads it (ledger.FindOnDisk), holds any tag in any form (bytes, hex,
// base64), nor does any log. A record whose window is still open is found
// by the same scan, encrypted (never in plaintext): the scan sees the
// store the tags are kept in.
func TestFollowupHitsErased(t *testing.T) {
	if testing.Short() {
		t.Skip("four replicas in two agencies: not in -short")
	}
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 3, logs)
	th := startAgency(t, "TH", 1, logs)
	th.hold("phone", "GB", append([]string{"+44 7700 900101", "+44 7700 900202"}, fillers(41000, 20)...)...)
	gb.pin(th)
	th.pin(gb)

	// The query runs on a replica that does not lead the audit group.
	lead := gb.leader()
	var q *Node
	for _, n := range gb.running() {
		if n != lead && (q == nil || n.Data().Status().State != "Leader") {
			q = n
		}
	}
	values := canon(t, "phone", "GB", "07700 900101", "07700 900999", "07700 900202")
	res, err := q.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: "phone", Case: "OP-E", Basis: "Art. 10", Offence: "thb",
		Purpose: "p", Partners: []string{"TH"}, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	p := partOf(t, res, "TH")
	if !slices.Equal(p.Hits, []int{0, 2}) || !slices.Equal(p.HitNumbers, []int{1, 2}) {
		t.Fatalf("TH part: hits %v numbers %v; want hits [0 2] numbered [1 2]", p.Hits, p.HitNumbers)
	}
	k, err := q.followOut.cfg.Hits.lookup(p.RequestID, "TH")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Tags) != 2 {
		t.Fatalf("kept hits: %d tags; want 2", len(k.Tags))
	}
	// Before the window closes, every replica serves them.
	for _, n := range gb.running() {
		until(t, n.fc.ReplicaID()+" serves the kept hits", func() bool {
			x, err := n.followOut.cfg.Hits.lookup(res.ID, "TH")
			return err == nil && x.RequestID == p.RequestID && len(x.Tags) == 2 && bytes.Equal(x.Tags[1].Tag, k.Tags[1].Tag)
		})
	}

	// A record whose window is still open when the sweep runs.
	open := make([]byte, 32)
	if _, err := rand.Read(open); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	ctl := &keptHits{RequestID: hex.EncodeToString(open[:16]), Query: "q-control", Partner: "TH", User: ivan.Name, Kind: "phone",
		Epoch: p.Epoch, Mode: k.Mode, Created: now, Expires: now.Add(20 * DefaultFollowupWindow), Tags: []keptTag{{Reach: reachOpen, Tag: open}}}
	if err := q.followOut.cfg.Hits.keep(ctx, ctl); err != nil {
		t.Fatal(err)
	}

	// The window closes; the audit leader's sweep runs.
	lastBefore, _ := lead.Data().Get(nsErase, "last")
	h := *lead.followOut.cfg.Hits
	h.now = func() time.Time { return time.Now().Add(DefaultFollowupWindow + time.Minute) }
	n, err := h.sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("sweep = %d, %v; want the one record past its window erased", n, err)
	}
	for _, r := range gb.running() {
		until(t, r.fc.ReplicaID()+" drops the kept hits", func() bool {
			_, err := r.followOut.cfg.Hits.lookup(p.RequestID, "")
			return errors.Is(err, httpapi.ErrNotFound)
		})
		if _, err := r.followOut.cfg.Hits.lookup(ctl.RequestID, ""); err != nil {
			t.Errorf("%s: the record still in its window: %v", r.fc.ReplicaID(), err)
		}
	}

	// The sweep requested an erasure; every replica compacts for it.
	last, err := lead.Data().Get(nsErase, "last")
	if err != nil || bytes.Equal(last, lastBefore) {
		t.Errorf("erasure request after the sweep: %q (before: %q), %v; want a new one", last, lastBefore, err)
	} else {
		for _, r := range gb.running() {
			id := r.fc.ReplicaID()
			poll(t, id+" compacted after the sweep", 5*time.Minute, func() bool {
				v, err := lead.Data().Get(nsErase, "done/"+id)
				return err == nil && bytes.Equal(v, last)
			})
		}
	}

	// Every replica stopped, so that its files are at rest; then scanned.
	var needles [][]byte
	swept := map[int]bool{}
	for _, tg := range k.Tags {
		for _, f := range tagForms(tg.Tag) {
			swept[len(needles)] = true
			needles = append(needles, f)
		}
	}
	needles = append(needles, tagForms(open)...)
	for i, f := range needles {
		if swept[i] && bytes.Contains(logs.Bytes(), f) {
			t.Errorf("a kept tag (form %d) in the logs", i%3)
		}
	}
	keys := make([][]byte, len(gb.dirs))
	for i := range gb.nodes {
		gb.stop(i)
		if keys[i], err = readStorageKey(filepath.Join(gb.dirs[i], StorageKeyFile), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i, dir := range gb.dirs {
		found, err := ledger.FindOnDisk(dir, keys[i], needles)
		if err != nil {
			t.Fatalf("scan replica %d: %v", i+1, err)
		}
		control := 0
		for _, f := range found {
			switch {
			case swept[f.Needle]:
				t.Errorf("replica %d: a tag past its window (form %d) found: %v", i+1, f.Needle%3, f)
			case f.How == "raw":
				t.Errorf("replica %d: a kept tag in plaintext: %v", i+1, f)
			case f.How == "database":
				control++
			}
		}
		if control == 0 {
			t.Errorf("replica %d: the tag still in its window not found in its databases: the scan sees nothing (found %v)", i+1, fmt.Sprint(found))
		}
	}
}

// TestFollowupSweepRequestsErasure: a sweep that deleted records requests
// an erasure of the data group; one that deleted none requests none; an
// erasure that could not be requested is requested at the next sweep,
// even when that sweep deletes nothing.
func TestFollowupSweepRequestsErasure(t *testing.T) {
	if testing.Short() {
		t.Skip("a replica: not in -short")
	}
	noLeaks(t)
	ctx := context.Background()
	gb := startAgency(t, "GB", 1, &syncBuf{})
	n := gb.leader()
	h := *n.followOut.cfg.Hits
	calls, fail := 0, true
	h.erase = func(ctx context.Context) (string, error) {
		calls++
		if fail {
			return "", errors.New("no quorum")
		}
		return n.holdings.requestErase(ctx)
	}
	sweep := func(wantN, wantCalls int, wantErr bool) {
		t.Helper()
		got, err := h.sweep(ctx)
		if got != wantN || (err != nil) != wantErr || calls != wantCalls {
			t.Fatalf("sweep = %d, %v after %d erasure requests; want %d deleted, error %v, %d requests", got, err, calls, wantN, wantErr, wantCalls)
		}
	}
	sweep(0, 0, false) // nothing kept: no erasure
	past := time.Now().Add(-time.Minute)
	if err := h.keep(ctx, &keptHits{RequestID: "00112233445566778899aabbccddeeff", Partner: "TH", Created: past.Add(-time.Hour), Expires: past,
		Tags: []keptTag{{Reach: reachOpen, Tag: make([]byte, 32)}}}); err != nil {
		t.Fatal(err)
	}
	sweep(1, 1, true) // deleted; the request fails
	fail = false
	sweep(0, 2, false) // nothing more to delete: the erasure is requested again
	if v, err := n.Data().Get(nsErase, "last"); err != nil || len(v) == 0 {
		t.Errorf("erasure request: %q, %v; want one", v, err)
	}
	sweep(0, 2, false) // done: none more
}

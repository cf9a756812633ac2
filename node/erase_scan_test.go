package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xborder/xborder/ident"
	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
)

// TestErasureScan is the erasure acceptance test of issue 18: planted
// identifiers imported into a 3-replica agency, snapshots of both groups
// forced on every replica, some removed, `data compact`, a fourth replica
// joined; then every file under every replica's directory, as one holding
// the storage key reads it (ledger.FindOnDisk: raw bytes, decrypted Raft
// snapshots, every write-ahead and value-log entry, every version of
// every key), holds no removed identifier in any form (canonical, OPRF
// input frame, SHA-256 of either, raw or hex), and no remaining one in
// plaintext. All four replicas report the same set version and digest
// per kind (data stats), and after keys rotate a partner's query hits
// every remaining identifier and no removed one.
func TestErasureScan(t *testing.T) {
	if testing.Short() {
		t.Skip("four replicas and a partner")
	}
	noLeaks(t)
	ctx := context.Background()
	logs := &syncBuf{}
	gb := startAgency(t, "GB", 3, logs)
	th := startAgency(t, "TH", 1, logs)
	gb.pin(th)
	th.pin(gb)

	phones := canon(t, "phone", "GB", fillers(50000, 40)...)
	mails := make([]string, 12)
	for i := range mails {
		mails[i] = fmt.Sprintf("planted%02d@example.org", i)
	}
	gb.hold("phone", "GB", phones...)
	gb.hold("email", "", mails...)
	gonePhones, keptPhones := phones[:10], phones[10:]
	goneMails, keptMails := mails[:4], mails[4:]

	for _, n := range gb.running() {
		for _, l := range []*ledger.Ledger{n.Audit(), n.Data()} {
			if err := l.Snapshot(); err != nil {
				t.Fatalf("%s: %v", n.fc.ReplicaID(), err)
			}
		}
	}
	lead := gb.leader()
	for kind, gone := range map[string][]string{"phone": gonePhones, "email": goneMails} {
		rows := make([]httpapi.Row, len(gone))
		for i, v := range gone {
			rows[i] = httpapi.Row{Line: i + 1, Value: v}
		}
		res, err := lead.holdings.RemoveRows(ctx, stew, httpapi.RemoveRows{Kind: kind, Region: "GB", Rows: rows})
		if err != nil || res.Removed != len(gone) {
			t.Fatalf("RemoveRows(%s) = %+v, %v; want %d removed", kind, res, err, len(gone))
		}
	}
	lead.holdings.compactWait = 10 * time.Minute // -race on a loaded machine
	cres, err := lead.holdings.CompactData(ctx, stew)
	if err != nil || len(cres.Pending) != 0 || len(cres.Compacted) != 3 {
		t.Fatalf("CompactData = %+v, %v; want 3 replicas compacted", cres, err)
	}
	e, err := lead.Audit().Entry(cres.Index, 0)
	if err != nil || e.Entry.Type != ledger.TypeRemove || e.Entry.Count != 3 {
		t.Errorf("compaction entry %d = %+v, %v; want a remove entry counting 3 replicas", cres.Index, e.Entry.Header, err)
	}

	// A fourth replica joins after the compaction.
	b, err := lead.replicas.NewBundle("r4", nil)
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(t.TempDir(), "GB-r4")
	if _, err := InitFromBundle(d, b, ListenConfig{}); err != nil {
		t.Fatal(err)
	}
	gb.dirs = append(gb.dirs, d)
	gb.nodes = append(gb.nodes, nil)
	gb.open(3)
	r4 := gb.nodes[3]
	poll(t, "r4 a member", 2*time.Minute, func() bool { return r4.Ready() == nil && member(r4) })

	// The same set version and digest per kind and epoch on all four,
	// each serving it, with the removals' bases built.
	stats := func(n *Node) map[string]httpapi.SetStats {
		st, err := n.holdings.DataStats(ctx, stew)
		if err != nil {
			return nil
		}
		out := map[string]httpapi.SetStats{}
		for _, s := range st.Sets {
			out[fmt.Sprintf("%s/%d", s.Kind, s.Epoch)] = s
		}
		return out
	}
	var want map[string]httpapi.SetStats
	poll(t, "every replica serves the same sets", 3*time.Minute, func() bool {
		want = stats(gb.nodes[0])
		if len(want) != 2 {
			return false
		}
		for _, n := range gb.nodes {
			got := stats(n)
			for k, w := range want {
				if g, ok := got[k]; !ok || !g.Serving || !w.Serving || g.Version != w.Version || g.Digest != w.Digest || g.Base != g.Version {
					return false
				}
			}
		}
		return true
	})
	t.Logf("sets on every replica: %+v", want)

	// Every replica stopped, so that its files are at rest; then scanned.
	needles, owner := [][]byte{}, []string{}
	add := func(kind, c string, gone bool) {
		k, _ := ident.ParseKind(kind)
		in := ident.Input(k, c)
		s1, s2 := sha256.Sum256([]byte(c)), sha256.Sum256(in)
		forms := [][]byte{[]byte(c)}
		if gone {
			forms = append(forms, in, s1[:], s2[:], []byte(hex.EncodeToString(s1[:])), []byte(hex.EncodeToString(s2[:])))
		}
		for _, f := range forms {
			needles = append(needles, f)
			tag := "kept"
			if gone {
				tag = "removed"
			}
			owner = append(owner, tag+" "+kind)
		}
	}
	for _, c := range gonePhones {
		add("phone", c, true)
	}
	for _, c := range goneMails {
		add("email", c, true)
	}
	for _, c := range keptPhones {
		add("phone", c, false)
	}
	for _, c := range keptMails {
		add("email", c, false)
	}
	keys := make([][]byte, len(gb.dirs))
	for i := range gb.nodes {
		gb.stop(i)
		if keys[i], err = readStorageKey(filepath.Join(gb.dirs[i], StorageKeyFile), ""); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for i, dir := range gb.dirs {
		found, err := ledger.FindOnDisk(dir, keys[i], needles)
		if err != nil {
			t.Fatalf("scan replica %d: %v", i+1, err)
		}
		for _, f := range found {
			switch {
			case owner[f.Needle][:7] == "removed":
				t.Errorf("replica %d: %s identifier (form %d) found: %v", i+1, owner[f.Needle], f.Needle, f)
			case f.How == "raw":
				t.Errorf("replica %d: %s identifier in plaintext: %v", i+1, owner[f.Needle], f)
			default:
				seen[fmt.Sprintf("r%d %s", i+1, f.How)]++
			}
		}
	}
	t.Logf("kept identifiers found with the storage key: %v", seen)
	for i := range gb.dirs {
		if seen[fmt.Sprintf("r%d database", i+1)] == 0 {
			t.Errorf("replica %d: no kept identifier found in its databases: the scan sees nothing", i+1)
		}
	}

	// All four again; keys rotate; TH's query hits every remaining
	// identifier and no removed one.
	for i := range gb.nodes {
		gb.open(i)
	}
	lead = gb.leader()
	poll(t, "four replicas ready", 2*time.Minute, func() bool {
		for _, n := range gb.nodes {
			if n.Ready() != nil || !member(n) {
				return false
			}
		}
		return true
	})
	if _, err := lead.holdings.RotateKeys(ctx, httpapi.User{Name: "admin", Role: "admin"}); err != nil {
		t.Fatalf("RotateKeys: %v", err)
	}
	for _, n := range gb.nodes {
		poll(t, "epoch 2 in force on "+n.fc.ReplicaID(), 3*time.Minute, func() bool {
			_, v, ok := n.sets.responder("phone", 2, reachOpen)
			return n.epochs.currentEpoch() == 2 && ok && v > 0
		})
	}
	q := th.leader()
	// The matching limits let TH ask GB phone numbers only.
	for kind, sets := range map[string][2][]string{"phone": {keptPhones, gonePhones}} {
		values := append(slices.Clone(sets[0]), sets[1]...)
		var p httpapi.PartnerResult
		poll(t, kind+" query under epoch 2", 2*time.Minute, func() bool {
			res, err := q.querier.Query(ctx, ivan, httpapi.QueryRequest{Kind: kind, Case: "OP-18", Basis: "Art. 10", Offence: "thb",
				Purpose: "erasure check", Partners: []string{"GB"}, Values: values})
			if err != nil {
				t.Fatalf("Query(%s): %v", kind, err)
			}
			p = partOf(t, res, "GB")
			return p.Epoch == 2
		})
		wantHits := make([]int, len(sets[0]))
		for i := range wantHits {
			wantHits[i] = i
		}
		if p.Outcome != httpapi.OutcomeHits || !slices.Equal(p.Hits, wantHits) {
			t.Errorf("TH's %s query of %d kept and %d removed: %+v; want hits %v", kind, len(sets[0]), len(sets[1]), p, wantHits)
		}
	}
}

package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
)

var (
	snapKey      = []byte("0123456789abcdef0123456789abcdef")
	otherSnapKey = []byte("fedcba9876543210fedcba9876543210")
)

// writeSnap writes data as a snapshot through a snapStore with key and
// returns the store and the snapshot's ID.
func writeSnap(t *testing.T, dir string, key, data []byte) (*snapStore, string) {
	t.Helper()
	files, err := raft.NewFileSnapshotStore(dir, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := &snapStore{SnapshotStore: files, key: key}
	sink, err := s.Create(raft.SnapshotVersionMax, 7, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes, so chunks do not line up with them.
	for p := data; len(p) > 0; {
		n := min(len(p), 10007)
		if _, err := sink.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	return s, sink.ID()
}

// readSnap reads snapshot id of s whole.
func readSnap(s *snapStore, id string) (*raft.SnapshotMeta, []byte, error) {
	meta, rc, err := s.Open(id)
	if err != nil {
		return nil, nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return meta, b, err
}

// rewriteState replaces the state.bin of snapshot id under dir by
// edit(state.bin) and fixes the CRC in meta.json, as someone who can
// write the directory would: only the encryption can then tell.
func rewriteState(t *testing.T, dir, id string, edit func([]byte) []byte) {
	t.Helper()
	path := filepath.Join(dir, "snapshots", id)
	b, err := os.ReadFile(filepath.Join(path, "state.bin"))
	if err != nil {
		t.Fatal(err)
	}
	b = edit(b)
	if err := os.WriteFile(filepath.Join(path, "state.bin"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	mb, err := os.ReadFile(filepath.Join(path, "meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	h.Write(b)
	m["CRC"], m["Size"] = h.Sum(nil), len(b)
	if mb, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "meta.json"), mb, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotEncryptRoundTrip: what is written comes back, the file holds
// none of it, and the size Raft sends on an install is the plaintext's.
func TestSnapshotEncryptRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, snapChunk - 1, snapChunk, snapChunk + 1, 2 * snapChunk, 3*snapChunk + 555} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			data := bytes.Repeat([]byte("GB-P123456789|"), n/14+1)[:n]
			s, id := writeSnap(t, dir, snapKey, data)
			meta, got, err := readSnap(s, id)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, %v; want the %d written", len(got), err, n)
			}
			if meta.Size != int64(n) {
				t.Errorf("meta.Size = %d; want %d", meta.Size, n)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "snapshots", id, "state.bin"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(raw, []byte(snapMagic)) || n > 0 && bytes.Contains(raw, []byte("GB-P123456789")) {
				t.Errorf("state.bin is not the encrypted stream")
			}
		})
	}
}

// TestSnapshotNoKey: without a key, snapshots are stored as written.
func TestSnapshotNoKey(t *testing.T) {
	dir := t.TempDir()
	s, id := writeSnap(t, dir, nil, []byte("plain"))
	raw, err := os.ReadFile(filepath.Join(dir, "snapshots", id, "state.bin"))
	if err != nil || string(raw) != "plain" {
		t.Fatalf("state.bin = %q, %v; want as written", raw, err)
	}
	if _, got, err := readSnap(s, id); err != nil || string(got) != "plain" {
		t.Errorf("read %q, %v", got, err)
	}
}

// TestSnapshotTamper: a wrong key, a flipped byte, a cut, a dropped or
// swapped chunk or a plaintext file each fail to open, and no byte is
// returned.
func TestSnapshotTamper(t *testing.T) {
	data := bytes.Repeat([]byte{'x'}, 3*snapChunk+100)
	full := snapChunk + snapTag
	hdr := len(snapMagic) + snapSalt
	for _, tc := range []struct {
		name string
		key  []byte
		edit func([]byte) []byte
	}{
		{"wrong key", otherSnapKey, nil},
		{"flipped byte", snapKey, func(b []byte) []byte { b[hdr+full+9] ^= 1; return b }},
		{"flipped salt", snapKey, func(b []byte) []byte { b[len(snapMagic)] ^= 1; return b }},
		{"cut at a chunk", snapKey, func(b []byte) []byte { return b[:hdr+3*full] }},
		{"cut in a chunk", snapKey, func(b []byte) []byte { return b[:len(b)-5] }},
		{"extended", snapKey, func(b []byte) []byte { return append(b, 0) }},
		{"chunks swapped", snapKey, func(b []byte) []byte {
			c1 := bytes.Clone(b[hdr : hdr+full])
			copy(b[hdr:], b[hdr+full:hdr+2*full])
			copy(b[hdr+full:], c1)
			return b
		}},
		{"plaintext", snapKey, func([]byte) []byte { return data }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, id := writeSnap(t, dir, snapKey, data)
			if tc.edit != nil {
				rewriteState(t, dir, id, tc.edit)
			}
			s.key = tc.key
			_, got, err := readSnap(s, id)
			if !errors.Is(err, errSnapshotAuth) || len(got) != 0 {
				t.Errorf("read = %d bytes, %v; want none and errSnapshotAuth", len(got), err)
			}
		})
	}
}

// TestOpenTamperedSnapshot: a ledger whose state must be restored from an
// encrypted snapshot that was altered refuses to open, saying so, and
// starts no restore.
func TestOpenTamperedSnapshot(t *testing.T) {
	cfg, root := behindSnapshotKey(t, snapKey)
	// Unaltered, the encrypted snapshot restores.
	good := t.TempDir()
	if err := os.CopyFS(good, os.DirFS(cfg.Dir)); err != nil {
		t.Fatal(err)
	}
	list, err := (&snapStore{}).listIn(cfg.Dir)
	if err != nil || len(list) == 0 {
		t.Fatalf("snapshots = %v, %v", list, err)
	}
	rewriteState(t, filepath.Join(cfg.Dir, "snapshots"), list[0].ID, func(b []byte) []byte {
		b[len(b)/2] ^= 0x20
		return b
	})
	l, err := Open(context.Background(), cfg)
	if err == nil {
		l.Close()
		t.Fatal("Open with a tampered snapshot succeeded")
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), errSnapshotAuth.Error()) {
		t.Errorf("Open = %v; want ErrCorrupt naming the snapshot's decryption", err)
	}
	db, err := badger.Open(stateOptions(dbOptions(cfg.Dir, snapKey, nil)))
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(txn *badger.Txn) error {
		if _, ok, err := getBytes(txn, []byte(keyRestore)); ok || err != nil {
			return fmt.Errorf("restore marker set (%v): a restore started", err)
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Error(err)
	}

	gcfg := cfg
	gcfg.Dir = good
	l = open(t, gcfg)
	defer l.Close()
	checkEntries(t, l, 25, root)
}

// listIn lists the snapshots of the ledger directory dir.
func (*snapStore) listIn(dir string) ([]*raft.SnapshotMeta, error) {
	files, err := raft.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), 2, io.Discard)
	if err != nil {
		return nil, err
	}
	return files.List()
}

// TestSnapshotsNoPlaintext: records holding identifier-like bytes, on a
// 3-replica cluster with a storage key, snapshotted on every replica and
// installed on a fourth: no file under any replica's directory holds
// those bytes.
func TestSnapshotsNoPlaintext(t *testing.T) {
	c := newCluster(t)
	c.key = snapKey
	c.tune = func(rc *raft.Config) {
		fastRaft(rc)
		rc.TrailingLogs = 10 // compact hard, so that a new replica needs the snapshot
	}
	c.grow(3)
	lead := c.Leader()
	planted := func(i int) string { return fmt.Sprintf("PLANTED-ID-%08d", i) }
	for i := range 30 {
		if _, err := c.putRetry(lead, "holdings", planted(i), []byte(planted(1000+i))); err != nil {
			t.Fatal(err)
		}
	}
	c.converge()
	for _, r := range c.running() {
		if err := r.l.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot on %s: %v", r.id, err)
		}
	}
	r4 := c.newReplica("r4", c.ca)
	c.start(r4, false)
	c.add(r4)
	c.converge()
	if s := r4.l.raft.Stats()["last_snapshot_index"]; s == "0" || s == "" {
		t.Fatalf("r4 last_snapshot_index = %q; want the installed snapshot", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := r4.l.Get("holdings", planted(7))
		if err == nil && string(v) == planted(1007) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("r4 Get(holdings/%s) = %q, %v", planted(7), v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, r := range c.running() {
		if err := r.l.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("snapshot on %s: %v", r.id, err)
		}
	}
	snaps := 0
	err := filepath.WalkDir(c.base, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if d.Name() == "state.bin" {
			snaps++
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i := range 30 {
			for _, p := range []string{planted(i), planted(1000 + i)} {
				if bytes.Contains(b, []byte(p)) {
					t.Errorf("%s holds %s", path, p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if snaps < 4 {
		t.Errorf("%d snapshot files scanned; want one per replica at least", snaps)
	}
}

// FuzzSnapReader: any file either fails with errSnapshotAuth or decrypts
// to what was written; no other bytes ever come out.
func FuzzSnapReader(f *testing.F) {
	data := bytes.Repeat([]byte("0123456789"), snapChunk/10+7)
	var buf bytes.Buffer
	w, err := newSnapWriter(&buf, snapKey, "1-2-3")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		f.Fatal(err)
	}
	if err := w.close(); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:len(snapMagic)+snapSalt])
	f.Fuzz(func(t *testing.T, b []byte) {
		sr, err := newSnapReader(io.NopCloser(bytes.NewReader(b)), snapKey, "1-2-3")
		if err != nil {
			if !errors.Is(err, errSnapshotAuth) {
				t.Fatalf("header: %v", err)
			}
			return
		}
		got, err := io.ReadAll(sr)
		switch {
		case err == nil && !bytes.Equal(got, data):
			t.Fatalf("decrypted %d bytes that were never written", len(got))
		case err != nil && !errors.Is(err, errSnapshotAuth):
			t.Fatalf("read: %v", err)
		}
	})
}

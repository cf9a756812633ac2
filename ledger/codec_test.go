package ledger

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// codecCases are commands of every operation, with every field set somewhere.
func codecCases() []*command {
	e := entry(1)
	e.Salt[0], e.Pruned = 7, true
	e.Body.Approver, e.Body.Offence = "approver", "trafficking"
	e2 := entry(2)
	return []*command{
		{Op: opAppend, ID: "a", Time: 5, Entry: &e},
		{Op: opAdmit, ID: "b", Time: -3, Entry: &e2, PolicyVersion: "v7",
			Reserve: []Reservation{{Key: "kind/phone/DAY", Amount: 1, Limit: 2}, {Key: "case/FR:1", Amount: 3}}, ReplayWindow: int64(time.Hour)},
		{Op: opPut, ID: "c", NS: "pins", Key: "FR", Value: []byte{1, 0, 2}},
		{Op: opDelete, ID: "d", NS: "pins", Key: "FR"},
		{Op: opSwap, ID: "s", NS: "witness", Key: "xborder.ledger/FR", Value: []byte("note"), Expect: Digest{9, 8, 7}},
		{Op: opSwap, ID: "t", NS: "pins", Key: "DE", Value: []byte("card"), Expect: Digest{1}, Entry: &e2},
		{Op: opSwap, ID: "u", NS: "pins", Key: "DE", Expect: Digest{2}, Remove: true, Entry: &e2},
		{Op: opPrune, ID: "e", Entry: &e2, Before: 1 << 60, Max: 1000, Done: 17},
		{Op: opBatch, Batch: []*command{{Op: opAppend, ID: "f", Time: 1, Entry: &e2}, {Op: opDelete, ID: "g", NS: "n", Key: "k"}}},
	}
}

// normalised is c as the state machine sees it: the entry fields the
// ledger sets itself (Version, Index, Time, BodyHash) are not carried.
func normalised(c *command) *command {
	out := *c
	if c.Entry != nil {
		e := *c.Entry
		e.Version, e.Index, e.Time, e.BodyHash = EntryVersion, 0, time.Unix(0, 0).UTC(), Digest{}
		out.Entry = &e
	}
	out.Batch = nil
	for _, sub := range c.Batch {
		out.Batch = append(out.Batch, normalised(sub))
	}
	return &out
}

// TestCommandCodec: every operation and field survives the binary
// encoding; the time sits at its fixed offset and stampTime changes it in a
// copy only; JSON commands of earlier logs still decode to the same
// command; undecodable batch members and entries come back nil (Apply
// answers them "invalid") and other damage is an error.
func TestCommandCodec(t *testing.T) {
	for _, c := range codecCases() {
		b, err := encodeCommand(c)
		if err != nil {
			t.Fatalf("encode %s: %v", c.Op, err)
		}
		got, err := decodeCommand(b)
		if err != nil {
			t.Fatalf("decode %s: %v", c.Op, err)
		}
		if want := normalised(c); !reflect.DeepEqual(got, want) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", c.Op, got, want)
		}
		stamped := stampTime(b, 99)
		if s, err := decodeCommand(stamped); err != nil || s.Time != 99 {
			t.Errorf("%s stamped: time %v, %v; want 99", c.Op, s, err)
		}
		if again, _ := decodeCommand(b); again.Time != c.Time {
			t.Errorf("%s: stampTime changed the original (time %d)", c.Op, again.Time)
		}
		if c.Op == opBatch {
			continue
		}
		j, _ := json.Marshal(c)
		legacy, err := decodeCommand(j)
		if err != nil {
			t.Fatalf("decode JSON %s: %v", c.Op, err)
		}
		if !reflect.DeepEqual(legacy, c) {
			t.Errorf("JSON %s: got %+v, want %+v", c.Op, legacy, c)
		}
	}

	e := entry(1)
	good, _ := encodeCommand(&command{Op: opAppend, ID: "x", Entry: &e})
	batch := encodeBatch([][]byte{good, {codecVersion, 0}, good[:len(good)-3]})
	c, err := decodeCommand(batch)
	if err != nil || len(c.Batch) != 3 || c.Batch[0] == nil || c.Batch[1] != nil || c.Batch[2] != nil {
		t.Errorf("batch with damaged members = %+v, %v; want the first member and two nil", c, err)
	}
	long := entry(1)
	long.Kind = string(make([]byte, MaxField+1))
	if _, err := encodeCommand(&command{Op: opAppend, ID: "x", Entry: &long}); !errors.Is(err, ErrInvalid) {
		t.Errorf("encode an entry with a field over MaxField = %v; want ErrInvalid", err)
	}
	for name, b := range map[string][]byte{
		"empty":            nil,
		"version 2":        append([]byte{2}, good[1:]...),
		"unknown op":       append(append([]byte{}, good[:9]...), append([]byte{42}, good[10:]...)...),
		"truncated":        good[:len(good)-1],
		"unknown field":    append(append([]byte{}, good...), 0x80, 0x01, 1), // field 16, varint
		"repeated id":      append(append([]byte{}, good...), 0x0a, 1, 'y'),
		"no ID":            encodeBatch(nil)[:cmdHeader-1],
		"member in append": append(append([]byte{}, good...), 0x62, 0),
	} {
		if c, err := decodeCommand(b); err == nil {
			t.Errorf("%s: decoded %+v; want an error", name, c)
		}
	}
	// An entry that does not decode leaves the command, without its entry.
	bad := append([]byte{}, good...)
	bad[len(bad)-1] ^= 0xff // inside the body's last string: not UTF-8
	if c, err := decodeCommand(bad); err != nil || c.Entry != nil || c.ID != "x" {
		t.Errorf("command with a damaged entry = %+v, %v; want ID x and no entry", c, err)
	}
	// A swap's damaged entry is not dropped (the swap would hold without
	// it): it comes back empty, which Apply answers "invalid".
	se := entry(3)
	sb, err := encodeCommand(&command{Op: opSwap, ID: "y", Entry: &se})
	if err != nil {
		t.Fatal(err)
	}
	sb[len(sb)-1] ^= 0xff
	if c, err := decodeCommand(sb); err != nil || c.Entry == nil || c.Entry.validate() == nil {
		t.Errorf("swap with a damaged entry = %+v, %v; want an entry that does not validate", c, err)
	}
}

// TestOutcomeCodec: outcomes round-trip in the binary encoding, and JSON
// outcomes that earlier versions stored are still read.
func TestOutcomeCodec(t *testing.T) {
	for _, o := range []outcome{
		{},
		{Index: 5, Appended: true, RaftIndex: 9, Time: 1234, Code: "budget"},
		{RaftIndex: 2, Time: -1, Pruned: 77, More: true},
	} {
		got, err := decodeOutcome(encodeOutcome(o))
		if err != nil || !reflect.DeepEqual(got, o) {
			t.Errorf("outcome round trip %+v: %+v, %v", o, got, err)
		}
		j, _ := json.Marshal(o)
		if got, err := decodeOutcome(j); err != nil || !reflect.DeepEqual(got, o) {
			t.Errorf("JSON outcome %s: %+v, %v", j, got, err)
		}
	}
	for _, b := range [][]byte{nil, {2}, {codecVersion, 0x78, 1}, []byte("{bad")} {
		if _, err := decodeOutcome(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeOutcome(%q) = %v; want ErrCorrupt", b, err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzDecodeCommand fuzzes the decoder of Raft commands in both
// encodings: it never panics, and a binary command it accepts re-encodes
// to one that decodes equal (a JSON one to the same ID and operation).
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range codecCases() {
		b, _ := json.Marshal(c)
		f.Add(b)
		b, err := encodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"op":"append","id":"x","extra":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommand(b)
		if err != nil {
			return
		}
		for i, sub := range c.Batch {
			if sub == nil {
				c.Batch[i] = &command{Op: opAppend, ID: "filler"}
			}
		}
		again, err := encodeCommand(c)
		if err != nil {
			if c.Op == opBatch || errors.Is(err, ErrInvalid) {
				return // JSON batches may nest; Apply refuses what does not encode
			}
			t.Fatalf("re-encode a decoded command: %v", err)
		}
		c2, err := decodeCommand(again)
		if err != nil || c2.ID != c.ID || c2.Op != c.Op {
			t.Fatalf("command round trip: %+v -> %+v, %v", c, c2, err)
		}
		if b[0] == codecVersion && c.Op != opBatch && !reflect.DeepEqual(c, c2) {
			t.Errorf("binary command round trip:\n%+v\n%+v", c, c2)
		}
	})
}

package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

func sampleLeaf() []byte {
	e := entry(3)
	e.Version = EntryVersion
	e.Index = 42
	e.Time = time.Date(2026, 5, 6, 7, 8, 9, 10, time.UTC)
	e.Digest[0] = 9
	return EncodeLeaf(&e.Header)
}

func FuzzDecodeLeaf(f *testing.F) {
	f.Add(sampleLeaf())
	f.Add([]byte{EntryVersion})
	f.Add(append(sampleLeaf(), 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeLeaf(b)
		if err != nil {
			return
		}
		if again := EncodeLeaf(&h); !bytes.Equal(again, b) {
			t.Errorf("EncodeLeaf(DecodeLeaf(b)) differs from b:\n%x\n%x", again, b)
		}
	})
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

func FuzzReadSnapshot(f *testing.F) {
	var good bytes.Buffer
	good.WriteString(snapshotMagic)
	for _, kv := range [][2]string{{"s/m/size", "\x00\x00\x00\x00\x00\x00\x00\x01"}, {"s/r/pins\x00FR", "v"}} {
		good.Write([]byte{0, 0, 0, byte(len(kv[0]))})
		good.WriteString(kv[0])
		good.Write([]byte{0, 0, 0, byte(len(kv[1]))})
		good.WriteString(kv[1])
	}
	good.Write([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add(good.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Add(append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := readSnapshot(bytes.NewReader(b), func(k, v []byte) error {
			if !bytes.HasPrefix(k, []byte(prefixState)) {
				t.Errorf("readSnapshot passed a key outside the state: %q", k)
			}
			n++
			return nil
		})
		if err == nil && !bytes.HasSuffix(b, []byte{0xff, 0xff, 0xff, 0xff}) {
			t.Errorf("readSnapshot accepted a stream without its end mark")
		}
	})
}

func FuzzCheckLine(f *testing.F) {
	e := entry(2)
	e.Version = EntryVersion
	e.Index = 0
	e.Time = time.Unix(1, 0).UTC()
	e.BodyHash = BodyHash(e.Salt, e.Body)
	line, _ := json.Marshal(ExportLine{Index: 0, Leaf: EncodeLeaf(&e.Header), Header: e.Header, Body: &e.Body, Salt: &e.Salt})
	f.Add(line)
	f.Add([]byte(`{"index":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := checkLine(0, b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeLeaf(&l.Header), l.Leaf) {
			t.Errorf("checkLine accepted a header that is not its leaf")
		}
		if l.Body != nil && BodyHash(*l.Salt, *l.Body) != l.Header.BodyHash {
			t.Errorf("checkLine accepted a body that does not match")
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	vk, _ := VerifierKey(Origin("GB"), testKey.Public().(ed25519PublicKey))
	f.Add([]byte("xborder.ledger/GB\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— xborder.ledger/GB abcd\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ParseCheckpoint(b, vk)
		if err == nil && cp.Origin != Origin("GB") {
			t.Errorf("ParseCheckpoint accepted origin %q", cp.Origin)
		}
	})
}

// FuzzParseRecord fuzzes the parser of stored entry records: it never
// panics, and a record it accepts is what encodeRecord makes of its parts.
func FuzzParseRecord(f *testing.F) {
	leaf := sampleLeaf()
	body := append(make([]byte, 32), encodeBody(&Body{Actor: "a", Purpose: "p"})...)
	for _, i := range []uint64{0, 1, 6, 7} {
		hashes := make([]tlog.Hash, hashCount(i))
		f.Add(i, encodeRecord(hashes, leaf, body))
		f.Add(i, encodeRecord(hashes, leaf, nil))
	}
	f.Add(uint64(3), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, i uint64, v []byte) {
		r, err := parseRecord(i, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("parseRecord error %v is not ErrCorrupt", err)
			}
			return
		}
		hashes := make([]tlog.Hash, hashCount(i))
		for k := range hashes {
			hashes[k] = r.hash(k)
		}
		if again := encodeRecord(hashes, r.leaf, r.body); !bytes.Equal(again, v) {
			t.Errorf("encodeRecord(parseRecord(v)) differs from v:\n%x\n%x", again, v)
		}
		if len(r.body) > 0 && !bytes.Equal(r.withoutBody(), v[:len(v)-len(r.body)]) {
			t.Errorf("withoutBody is not the record up to its body")
		}
	})
}

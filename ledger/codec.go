package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/xborder/xborder/ledger/format"
)

// Commands and outcomes are binary (docs/ledger.md, "Commands"): every
// replica decodes every command, so their encoding is on the hot path of
// each append. A command is
//
//	byte 0      codecVersion
//	bytes 1-8   time, Unix ns, big-endian (stamped in place by the leader)
//	byte 9      operation
//	bytes 10-   protobuf fields (cmdField…), each at most once except
//	            reservations and batch members, in any order
//
// A batch's members are whole commands, each with its own time. Logs and
// snapshots written before this encoding hold JSON commands and outcomes,
// which start with '{' and are still read.
const (
	codecVersion = 1
	cmdHeader    = 1 + 8 + 1
	cmdTimeAt    = 1
)

// Operation bytes of the binary encoding.
var opCodes = map[string]byte{opAppend: 1, opAdmit: 2, opPut: 3, opDelete: 4, opPrune: 5, opBatch: 6, opRule: 7, opSwap: 8}

var opNames = func() map[byte]string {
	m := map[byte]string{}
	for k, v := range opCodes {
		m[v] = k
	}
	return m
}()

// Command fields.
const (
	cmdID            protowire.Number = 1
	cmdEntry         protowire.Number = 2
	cmdPolicyVersion protowire.Number = 3
	cmdReserve       protowire.Number = 4
	cmdReplayWindow  protowire.Number = 5
	cmdNS            protowire.Number = 6
	cmdKey           protowire.Number = 7
	cmdValue         protowire.Number = 8
	cmdBefore        protowire.Number = 9
	cmdMax           protowire.Number = 10
	cmdDone          protowire.Number = 11
	cmdBatch         protowire.Number = 12
	cmdAfter         protowire.Number = 13
	cmdExpect        protowire.Number = 14 // swap: 32 bytes, absent when zero
	cmdRemove        protowire.Number = 15 // swap: 1 to delete the record (absent: write Value)
)

// Fields of an entry inside a command, and of a reservation.
const (
	entryLeaf   protowire.Number = 1 // EncodeLeaf of the header with Index, Time and BodyHash zero
	entrySalt   protowire.Number = 2
	entryBody   protowire.Number = 3 // encodeBody
	entryPruned protowire.Number = 4

	resKey    protowire.Number = 1
	resAmount protowire.Number = 2
	resLimit  protowire.Number = 3
)

// Outcome fields.
const (
	outIndex     protowire.Number = 1
	outAppended  protowire.Number = 2
	outRaftIndex protowire.Number = 3
	outTime      protowire.Number = 4
	outCode      protowire.Number = 5
	outPruned    protowire.Number = 6
	outMore      protowire.Number = 7
)

var errCodec = errors.New("malformed")

// encodeCommand returns the binary encoding of c (a batch's members are
// encoded from c.Batch; encodeBatch joins members already encoded).
func encodeCommand(c *command) ([]byte, error) {
	op, ok := opCodes[c.Op]
	if !ok {
		return nil, fmt.Errorf("encode command: operation %q: %w", c.Op, ErrInvalid)
	}
	var entry []byte
	if c.Entry != nil {
		if err := c.Entry.validate(); err != nil {
			return nil, fmt.Errorf("encode command: %w", err)
		}
		entry = encodeCmdEntry(c.Entry)
	}
	b := make([]byte, cmdHeader, cmdHeader+len(c.ID)+len(entry)+len(c.Value)+len(c.NS)+len(c.Key)+len(c.After)+128)
	b[0] = codecVersion
	binary.BigEndian.PutUint64(b[cmdTimeAt:], uint64(c.Time))
	b[9] = op
	b = appendStr(b, cmdID, c.ID)
	if c.Entry != nil {
		b = protowire.AppendTag(b, cmdEntry, protowire.BytesType)
		b = protowire.AppendBytes(b, entry)
	}
	b = appendStr(b, cmdPolicyVersion, c.PolicyVersion)
	for _, r := range c.Reserve {
		var rb []byte
		rb = appendStr(rb, resKey, r.Key)
		rb = appendVarint(rb, resAmount, r.Amount)
		rb = appendVarint(rb, resLimit, r.Limit)
		b = protowire.AppendTag(b, cmdReserve, protowire.BytesType)
		b = protowire.AppendBytes(b, rb)
	}
	b = appendVarint(b, cmdReplayWindow, uint64(c.ReplayWindow))
	b = appendStr(b, cmdNS, c.NS)
	b = appendStr(b, cmdKey, c.Key)
	if len(c.Value) > 0 {
		b = protowire.AppendTag(b, cmdValue, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Value)
	}
	b = appendVarint(b, cmdBefore, uint64(c.Before))
	b = appendVarint(b, cmdMax, uint64(int64(c.Max)))
	b = appendVarint(b, cmdDone, c.Done)
	if len(c.After) > 0 {
		b = protowire.AppendTag(b, cmdAfter, protowire.BytesType)
		b = protowire.AppendBytes(b, c.After)
	}
	if c.Expect != (Digest{}) {
		b = protowire.AppendTag(b, cmdExpect, protowire.BytesType)
		b = protowire.AppendBytes(b, c.Expect[:])
	}
	if c.Remove {
		b = appendVarint(b, cmdRemove, 1)
	}
	for _, sub := range c.Batch {
		if sub == nil {
			return nil, fmt.Errorf("encode command: empty batch member: %w", ErrInvalid)
		}
		sb, err := encodeCommand(sub)
		if err != nil {
			return nil, err
		}
		b = protowire.AppendTag(b, cmdBatch, protowire.BytesType)
		b = protowire.AppendBytes(b, sb)
	}
	return b, nil
}

// encodeBatch joins encoded commands into one batch command.
func encodeBatch(members [][]byte) []byte {
	n := cmdHeader
	for _, m := range members {
		n += 2 + 4 + len(m)
	}
	b := make([]byte, cmdHeader, n)
	b[0] = codecVersion
	b[9] = opCodes[opBatch]
	for _, m := range members {
		b = protowire.AppendTag(b, cmdBatch, protowire.BytesType)
		b = protowire.AppendBytes(b, m)
	}
	return b
}

// stampTime returns a copy of the encoded command b with its time set to t.
func stampTime(b []byte, t int64) []byte {
	out := append([]byte(nil), b...)
	binary.BigEndian.PutUint64(out[cmdTimeAt:], uint64(t))
	return out
}

func encodeCmdEntry(e *Entry) []byte {
	h := e.Header
	h.Version, h.Index, h.Time, h.BodyHash = EntryVersion, 0, time.Unix(0, 0), Digest{}
	leaf := EncodeLeaf(&h)
	body := format.EncodeBody(&e.Body)
	b := make([]byte, 0, len(leaf)+len(body)+48)
	b = protowire.AppendTag(b, entryLeaf, protowire.BytesType)
	b = protowire.AppendBytes(b, leaf)
	if e.Salt != (Digest{}) {
		b = protowire.AppendTag(b, entrySalt, protowire.BytesType)
		b = protowire.AppendBytes(b, e.Salt[:])
	}
	b = protowire.AppendTag(b, entryBody, protowire.BytesType)
	b = protowire.AppendBytes(b, body)
	if e.Pruned {
		b = appendVarint(b, entryPruned, 1)
	}
	return b
}

func appendStr(b []byte, n protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, n protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, n, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// fields walks the protobuf fields of b, calling fn with each field's
// number, type, and value (v for varints, p for bytes). It fails on a
// malformed field, a group or fixed-width field, or a field repeated that
// repeatable does not allow.
func fields(b []byte, repeatable func(protowire.Number) bool, fn func(n protowire.Number, v uint64, p []byte) error) error {
	var seen [16]bool
	for len(b) > 0 {
		n, t, k := protowire.ConsumeTag(b)
		if k < 0 {
			return errCodec
		}
		b = b[k:]
		if n < protowire.Number(len(seen)) {
			if seen[n] && !repeatable(n) {
				return fmt.Errorf("field %d repeated: %w", n, errCodec)
			}
			seen[n] = true
		}
		var v uint64
		var p []byte
		switch t {
		case protowire.VarintType:
			v, k = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			p, k = protowire.ConsumeBytes(b)
		default:
			return fmt.Errorf("field %d of wire type %d: %w", n, t, errCodec)
		}
		if k < 0 {
			return errCodec
		}
		b = b[k:]
		if err := fn(n, v, p); err != nil {
			return err
		}
	}
	return nil
}

func never(protowire.Number) bool { return false }

// decodeCommand decodes a command in either encoding. A batch member that
// does not decode becomes nil (the state machine answers it "invalid");
// an entry that does not decode (a field too long, an undefined type)
// leaves Entry nil, which Apply answers "invalid" too.
func decodeCommand(b []byte) (*command, error) {
	if len(b) > 0 && b[0] == '{' {
		return decodeJSONCommand(b)
	}
	c, err := decodeBinaryCommand(b)
	if err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if c.ID == "" && c.Op != opBatch {
		return nil, fmt.Errorf("decode command: no command ID: %w", ErrInvalid)
	}
	return c, nil
}

func decodeBinaryCommand(b []byte) (*command, error) {
	if len(b) < cmdHeader || b[0] != codecVersion {
		return nil, errCodec
	}
	op, ok := opNames[b[9]]
	if !ok {
		return nil, fmt.Errorf("operation %d: %w", b[9], errCodec)
	}
	c := &command{Op: op, Time: int64(binary.BigEndian.Uint64(b[cmdTimeAt:]))}
	repeat := func(n protowire.Number) bool { return n == cmdReserve || n == cmdBatch }
	err := fields(b[cmdHeader:], repeat, func(n protowire.Number, v uint64, p []byte) error {
		switch n {
		case cmdID:
			c.ID = string(p)
		case cmdEntry:
			if e, err := decodeCmdEntry(p); err == nil {
				c.Entry = e
			} else if c.Op == opSwap {
				// Not a swap without entry: an entry that does not
				// validate, which Apply answers "invalid".
				c.Entry = &Entry{}
			}
		case cmdPolicyVersion:
			c.PolicyVersion = string(p)
		case cmdReserve:
			var r Reservation
			if err := fields(p, never, func(n protowire.Number, v uint64, p []byte) error {
				switch n {
				case resKey:
					r.Key = string(p)
				case resAmount:
					r.Amount = v
				case resLimit:
					r.Limit = v
				default:
					return fmt.Errorf("reservation field %d: %w", n, errCodec)
				}
				return nil
			}); err != nil {
				return err
			}
			c.Reserve = append(c.Reserve, r)
		case cmdReplayWindow:
			c.ReplayWindow = int64(v)
		case cmdNS:
			c.NS = string(p)
		case cmdKey:
			c.Key = string(p)
		case cmdValue:
			if len(p) > 0 {
				c.Value = p
			}
		case cmdBefore:
			c.Before = int64(v)
		case cmdMax:
			c.Max = int(int64(v))
		case cmdDone:
			c.Done = v
		case cmdAfter:
			if len(p) > 0 {
				c.After = p
			}
		case cmdExpect:
			if len(p) != len(c.Expect) {
				return fmt.Errorf("expected digest of %d bytes: %w", len(p), errCodec)
			}
			copy(c.Expect[:], p)
		case cmdRemove:
			c.Remove = v != 0
		case cmdBatch:
			if c.Op != opBatch {
				return fmt.Errorf("batch member in a %s command: %w", c.Op, errCodec)
			}
			sub, err := decodeBinaryCommand(p)
			if err != nil || sub.Op == opBatch || sub.ID == "" {
				sub = nil
			}
			c.Batch = append(c.Batch, sub)
		default:
			return fmt.Errorf("command field %d: %w", n, errCodec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func decodeCmdEntry(b []byte) (*Entry, error) {
	var e Entry
	haveLeaf := false
	err := fields(b, never, func(n protowire.Number, v uint64, p []byte) error {
		switch n {
		case entryLeaf:
			h, err := DecodeLeaf(p)
			if err != nil {
				return err
			}
			// The state machine sets these (the version it writes
			// included); a command does not carry them.
			h.Version, h.Index, h.Time, h.BodyHash = EntryVersion, 0, time.Unix(0, 0).UTC(), Digest{}
			e.Header, haveLeaf = h, true
		case entrySalt:
			if len(p) != len(e.Salt) {
				return errCodec
			}
			copy(e.Salt[:], p)
		case entryBody:
			body, err := format.DecodeBody(p)
			if err != nil {
				return err
			}
			e.Body = body
		case entryPruned:
			e.Pruned = v != 0
		default:
			return fmt.Errorf("entry field %d: %w", n, errCodec)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveLeaf {
		return nil, errCodec
	}
	return &e, nil
}

// decodeJSONCommand reads a command written before the binary encoding.
func decodeJSONCommand(b []byte) (*command, error) {
	var c command
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return nil, fmt.Errorf("decode command: %w", err)
	}
	if d.More() {
		return nil, fmt.Errorf("decode command: %w", errTrailing)
	}
	if c.ID == "" {
		return nil, fmt.Errorf("decode command: no command ID: %w", ErrInvalid)
	}
	return &c, nil
}

// encodeOutcome returns the binary encoding of o: codecVersion, then
// protobuf fields.
func encodeOutcome(o outcome) []byte {
	b := make([]byte, 1, 32)
	b[0] = codecVersion
	b = appendVarint(b, outIndex, o.Index)
	if o.Appended {
		b = appendVarint(b, outAppended, 1)
	}
	b = appendVarint(b, outRaftIndex, o.RaftIndex)
	b = appendVarint(b, outTime, uint64(o.Time))
	b = appendStr(b, outCode, o.Code)
	b = appendVarint(b, outPruned, o.Pruned)
	if o.More {
		b = appendVarint(b, outMore, 1)
	}
	return b
}

// decodeOutcome reads an outcome in either encoding.
func decodeOutcome(b []byte) (outcome, error) {
	var o outcome
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &o); err != nil {
			return outcome{}, fmt.Errorf("decode outcome: %w", ErrCorrupt)
		}
		return o, nil
	}
	if len(b) == 0 || b[0] != codecVersion {
		return outcome{}, fmt.Errorf("decode outcome: %w", ErrCorrupt)
	}
	err := fields(b[1:], never, func(n protowire.Number, v uint64, p []byte) error {
		switch n {
		case outIndex:
			o.Index = v
		case outAppended:
			o.Appended = v != 0
		case outRaftIndex:
			o.RaftIndex = v
		case outTime:
			o.Time = int64(v)
		case outCode:
			o.Code = string(p)
		case outPruned:
			o.Pruned = v
		case outMore:
			o.More = v != 0
		default:
			return errCodec
		}
		return nil
	})
	if err != nil {
		return outcome{}, fmt.Errorf("decode outcome: %w", ErrCorrupt)
	}
	return o, nil
}

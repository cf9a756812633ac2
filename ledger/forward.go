package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Forwarding limits.
const (
	// maxFrame bounds one forwarding request or response.
	maxFrame = 16 << 20
	// routeTimeout bounds how long an accepted connection may take to send
	// its kind byte.
	routeTimeout = 10 * time.Second
	// fwdIdle closes a forwarding connection that sends no request for this long.
	fwdIdle = 2 * time.Minute
	// fwdPool bounds the idle forwarding connections kept per peer. A
	// forwarded call holds its connection for the whole round trip, so the
	// pool grows to the number of callers forwarding at once. At 16, 64
	// writers on a follower dialled (a TLS handshake each) for most of
	// their appends: 3,200 appends/s at 526 µs of CPU each, against 7,500
	// and 169 µs at 256 (BenchmarkForwardedAppend, docs/BENCHMARKS.md).
	fwdPool = 256
)

// Forwarding operations.
const (
	fwdCommand   = "command"
	fwdAddVoter  = "add_voter"
	fwdRemove    = "remove"
	fwdReadIndex = "read_index"
	fwdPing      = "ping"
)

// Forwarding response codes.
const (
	codeRetry     = "retry"       // not (or no longer) the leader: find the leader and retry
	codeNoQuorum  = "no_quorum"   // the leader could not commit in time
	codeInvalid   = "invalid"     // the request is malformed
	codeNotMember = "not_member"  // the asking replica is not in the configuration
	codeUnreach   = "unreachable" // add_voter: the new replica did not answer
	codeFailed    = "failed"      // the operation failed for another reason (Msg says why)
)

// fwdRequest is what a follower sends the leader: one JSON frame.
type fwdRequest struct {
	Op      string `json:"op"`
	Command []byte `json:"cmd,omitempty"`  // fwdCommand: the encoded command (encodeCommand), ID set, time not
	ID      string `json:"id,omitempty"`   // add_voter, remove: the replica
	Addr    string `json:"addr,omitempty"` // add_voter: its address
	Timeout int64  `json:"timeout"`        // ns the asker still waits

	local bool // fwdCommand on the leader itself: Command was encoded here, no need to check it
}

// fwdResponse is the leader's answer.
type fwdResponse struct {
	Code    string   `json:"code,omitempty"`
	Msg     string   `json:"msg,omitempty"`
	Outcome *outcome `json:"outcome,omitempty"` // fwdCommand
	Index   uint64   `json:"index,omitempty"`   // read_index: the Raft index to wait for
	Replica string   `json:"replica,omitempty"` // ping: the answering replica
	Now     int64    `json:"now,omitempty"`     // ping: its clock, Unix ns (clock.go)
}

// writeFrame writes a 4-byte big-endian length and v as JSON.
func writeFrame(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxFrame {
		return fmt.Errorf("frame of %d bytes: %w", len(b), ErrInvalid)
	}
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b)), uint32(len(b)))
	_, err = w.Write(append(buf, b...))
	return err
}

// readFrame reads one frame written by writeFrame into v, strictly.
func readFrame(r io.Reader, v any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxFrame {
		return fmt.Errorf("read frame: length %d too large: %w", n, ErrInvalid)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("read frame: %w", errShort)
	}
	return decodeFrame(b, v)
}

func decodeFrame(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("decode frame: %w", ErrInvalid)
	}
	if d.More() {
		return fmt.Errorf("decode frame: %w", errTrailing)
	}
	return nil
}

// closeForward stops the forwarding server and client.
func (l *Ledger) closeForward() {
	l.fwdMu.Lock()
	l.fwdClosed = true
	for c := range l.fwdConns {
		c.Close()
	}
	for _, cs := range l.pool {
		for _, c := range cs {
			c.Close()
		}
	}
	l.pool = nil
	l.fwdMu.Unlock()
}

// errRetry says the request should go to the leader again.
var errRetry = errors.New("not the leader")

// err maps a forwarded response's code to an error.
func (r fwdResponse) err() error {
	switch r.Code {
	case "":
		return nil
	case codeRetry:
		return errRetry
	case codeNoQuorum:
		return fmt.Errorf("leader: %w", ErrNoQuorum)
	case codeInvalid:
		return fmt.Errorf("leader: %s: %w", r.Msg, ErrInvalid)
	case codeNotMember:
		return ErrNotMember
	case codeUnreach:
		return fmt.Errorf("%w: %s", ErrUnreachable, r.Msg)
	}
	return fmt.Errorf("leader: %s", r.Msg)
}

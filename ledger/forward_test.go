package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

// FuzzForwardFrame fuzzes the decoder of forwarding frames (requests from
// followers, responses from the leader): it never panics, refuses
// oversized lengths, and what it accepts re-encodes to an equal value.
func FuzzForwardFrame(f *testing.F) {
	e := entry(1)
	cmd, _ := jsonMarshal(&command{Op: opBatch, ID: "b", Batch: []*command{{Op: opAppend, ID: "a", Entry: &e}}})
	for _, v := range []any{
		&fwdRequest{Op: fwdCommand, Command: cmd, Timeout: 5e9},
		&fwdRequest{Op: fwdAddVoter, ID: "r4", Addr: "127.0.0.1:1", Timeout: 1},
		&fwdRequest{Op: fwdReadIndex},
		&fwdResponse{Outcome: &outcome{Index: 3, Appended: true, RaftIndex: 9, Code: "budget"}},
		&fwdResponse{Code: codeNotMember},
		&fwdResponse{Index: 77, Replica: "r2"},
	} {
		var buf bytes.Buffer
		if err := writeFrame(&buf, v); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add(binary.BigEndian.AppendUint32(nil, maxFrame+1))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&fwdRequest{}, &fwdResponse{}} {
			if err := readFrame(bytes.NewReader(b), v); err != nil {
				continue
			}
			var buf bytes.Buffer
			if err := writeFrame(&buf, v); err != nil {
				t.Fatalf("writeFrame of a decoded frame: %v", err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := readFrame(&buf, again); err != nil {
				t.Fatalf("readFrame of a re-encoded frame: %v", err)
			}
			if !reflect.DeepEqual(v, again) {
				t.Errorf("frame round trip: %+v != %+v", v, again)
			}
		}
	})
}

// TestReadFrameLimits: a length over maxFrame is refused before any
// allocation; a short frame and trailing data are refused.
func TestReadFrameLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"oversized", binary.BigEndian.AppendUint32(nil, maxFrame+1)},
		{"short", []byte{0, 0, 0, 9, '{', '}'}},
		{"trailing", []byte{0, 0, 0, 4, '{', '}', '{', '}'}},
		{"unknown field", append([]byte{0, 0, 0, 10}, `{"zz":1}  `...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var req fwdRequest
			if err := readFrame(bytes.NewReader(tc.b), &req); err == nil {
				t.Errorf("readFrame(%q) = nil; want an error", tc.b)
			} else if tc.name == "oversized" && !errors.Is(err, ErrInvalid) {
				t.Errorf("readFrame(oversized) = %v; want ErrInvalid", err)
			}
		})
	}
}

// TestForwardReusesConnections: 32 writers on a follower make 640
// forwarded appends; each holds one connection at a time and the idle ones
// are kept, so no more than 32 are ever opened per leader (with a pool
// smaller than the writers, most appends dialled: a TLS handshake each).
// A loaded machine can see an election during the run; connections to a
// new leader are new, so the bound is 32 per leader the follower saw.
func TestForwardReusesConnections(t *testing.T) {
	c := MakeCluster(t, 3)
	c.Leader()
	f := c.followers()[0].l
	const writers, each = 32, 20
	leaders := map[string]bool{}
	var mu sync.Mutex
	seen := func() {
		if l := f.Status().Leader; l != "" {
			mu.Lock()
			leaders[l] = true
			mu.Unlock()
		}
	}
	seen()
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				seen()
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := f.Append(context.Background(), entry(w*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-watched
	seen()
	limit := uint64(writers * len(leaders))
	if st := f.Status(); st.ForwardDials == 0 || st.ForwardDials > limit {
		t.Errorf("%d forwarding connections opened for %d appends by %d writers with %d leader(s); want 1 to %d",
			st.ForwardDials, writers*each, writers, len(leaders), limit)
	}
}

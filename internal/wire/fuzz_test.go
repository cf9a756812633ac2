package wire

import (
	"bytes"
	"testing"
)

// Each decoder either refuses its input or decodes it to a message whose
// encoding is the input (one encoding per message).
func FuzzMatchRequest(f *testing.F) {
	f.Add(sampleRequest().Marshal())
	f.Add([]byte{0x0a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalMatchRequest(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzMatchAnswer(f *testing.F) {
	f.Add(sampleAnswer().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalMatchAnswer(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzSyncRequest(f *testing.F) {
	f.Add(sampleSyncRequest().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalSyncRequest(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzSyncAnswer(f *testing.F) {
	f.Add(sampleSyncAnswer().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalSyncAnswer(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzSegment(f *testing.F) {
	f.Add(sampleSegment().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalSegment(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

// ReadFrame never returns more than the limit and, for a frame it accepts,
// returns exactly the bytes WriteFrame wrote.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ReadFrame(NewReader(bytes.NewReader(b)), 64)
		if err != nil {
			return
		}
		if len(got) > 64 {
			t.Fatalf("ReadFrame returned %d bytes over the limit", len(got))
		}
		var buf bytes.Buffer
		if err := WriteFrame(&buf, got); err != nil || !bytes.HasPrefix(b, buf.Bytes()) {
			t.Fatalf("WriteFrame(ReadFrame(%x)) = %x", b, buf.Bytes())
		}
	})
}

package wire

import (
	"bytes"
	"testing"
)

// The follow-up decoders, like the others, either refuse their input or
// decode it to a message whose encoding is the input.
func FuzzFollowupCall(f *testing.F) {
	f.Add((&FollowupCall{Request: sampleFollowupRequest()}).Marshal())
	f.Add((&FollowupCall{Poll: sampleFollowupPoll()}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalFollowupCall(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzFollowupAck(f *testing.F) {
	f.Add(sampleFollowupAck().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalFollowupAck(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzFollowupStatus(f *testing.F) {
	f.Add(sampleFollowupStatus().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalFollowupStatus(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

func FuzzFollowupAnswer(f *testing.F) {
	f.Add(sampleFollowupAnswer().Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := UnmarshalFollowupAnswer(b); err == nil && !bytes.Equal(m.Marshal(), b) {
			t.Fatalf("Marshal(Unmarshal(%x)) = %x", b, m.Marshal())
		}
	})
}

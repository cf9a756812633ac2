package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func sampleRequest() *MatchRequest {
	return &MatchRequest{
		ID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 1_790_000_000_000,
		Querier: "FR", Responder: "DE", Kind: "phone", Epoch: 7, PaddedSize: 1024,
		CaseRef: "case-1", LegalBasis: "art. 1", Offence: "thb", Purpose: "p", Urgent: true,
		BatchSHA256: bytes.Repeat([]byte{2}, HashSize), Mode: "safeguarding",
		Reaches: []string{"open", "victim", "witness"}, EvalRequest: []byte{3, 4, 5},
		Signature: bytes.Repeat([]byte{6}, SignatureSize),
	}
}

func sampleAnswer() *MatchAnswer {
	return &MatchAnswer{
		ID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 5, Responder: "DE", Querier: "FR",
		Status: StatusOK, BatchSHA256: bytes.Repeat([]byte{2}, HashSize),
		Evaluated: []Evaluated{
			{Reach: "open", SetVersion: 3, EvaluationSHA256: bytes.Repeat([]byte{3}, HashSize)},
			{Reach: "victim", EvaluationSHA256: bytes.Repeat([]byte{4}, HashSize)},
		},
		Evaluations: [][]byte{{9}, {8, 7}},
		Signature:   bytes.Repeat([]byte{6}, SignatureSize),
	}
}

func sampleSyncRequest() *SyncRequest {
	return &SyncRequest{ID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 9, Querier: "FR",
		Owner: "DE", Kind: "email", Epoch: 2, Base: 1, Version: 4, Reach: "victim",
		Signature: bytes.Repeat([]byte{6}, SignatureSize)}
}

func sampleSyncAnswer() *SyncAnswer {
	return &SyncAnswer{ID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 9, Owner: "DE",
		Querier: "FR", Status: StatusDenied, Reason: "kind_not_allowed", Card: []byte("card"),
		Segments: 2, Signature: bytes.Repeat([]byte{6}, SignatureSize)}
}

func sampleSegment() *Segment {
	return &Segment{Owner: "DE", Kind: "phone", Epoch: 7, Base: 1, Version: 2,
		SHA256: bytes.Repeat([]byte{2}, HashSize), Reach: "witness", Data: []byte("set"),
		Signature: bytes.Repeat([]byte{6}, SignatureSize)}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		msg    any
		enc    []byte
		decode func([]byte) (any, error)
	}{
		{"match request", sampleRequest(), sampleRequest().Marshal(), func(b []byte) (any, error) { return UnmarshalMatchRequest(b) }},
		{"match answer", sampleAnswer(), sampleAnswer().Marshal(), func(b []byte) (any, error) { return UnmarshalMatchAnswer(b) }},
		{"sync request", sampleSyncRequest(), sampleSyncRequest().Marshal(), func(b []byte) (any, error) { return UnmarshalSyncRequest(b) }},
		{"sync answer", sampleSyncAnswer(), sampleSyncAnswer().Marshal(), func(b []byte) (any, error) { return UnmarshalSyncAnswer(b) }},
		{"segment", sampleSegment(), sampleSegment().Marshal(), func(b []byte) (any, error) { return UnmarshalSegment(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(tt.enc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.msg) {
				t.Fatalf("decode(encode(m)) = %+v; want %+v", got, tt.msg)
			}
		})
	}
}

func TestSignedBytesExcludeSignature(t *testing.T) {
	a, b := sampleRequest(), sampleRequest()
	b.Signature = bytes.Repeat([]byte{7}, SignatureSize)
	b.EvalRequest = []byte{1}
	if !bytes.Equal(a.SignedBytes(), b.SignedBytes()) {
		t.Fatal("SignedBytes depends on the signature or the batch bytes")
	}
	b.Kind = "email"
	if bytes.Equal(a.SignedBytes(), b.SignedBytes()) {
		t.Fatal("SignedBytes does not cover the kind")
	}
	for name, change := range map[string]func(m *MatchRequest){
		"mode":        func(m *MatchRequest) { m.Mode = "enforcement" },
		"reaches":     func(m *MatchRequest) { m.Reaches = m.Reaches[:1] },
		"reach order": func(m *MatchRequest) { m.Reaches = []string{"victim", "open", "witness"} },
	} {
		c := sampleRequest()
		change(c)
		if bytes.Equal(sampleRequest().SignedBytes(), c.SignedBytes()) {
			t.Errorf("SignedBytes does not cover the %s", name)
		}
	}
	ans := sampleAnswer()
	ans.Evaluated[1].Reach = "witness"
	if bytes.Equal(sampleAnswer().SignedBytes(), ans.SignedBytes()) {
		t.Error("answer SignedBytes does not cover the reach of an evaluation")
	}
	sr := sampleSyncRequest()
	sr.Reach = "open"
	if bytes.Equal(sampleSyncRequest().SignedBytes(), sr.SignedBytes()) {
		t.Error("sync request SignedBytes does not cover the reach")
	}
	sg := sampleSegment()
	sg.Reach = "open"
	if bytes.Equal(sampleSegment().SignedBytes(), sg.SignedBytes()) {
		t.Error("segment SignedBytes does not cover the reach")
	}
	if !bytes.HasPrefix(a.SignedBytes(), []byte(ContextMatchRequest)) {
		t.Fatal("SignedBytes does not start with the signing context")
	}
	s := sampleSegment()
	if !bytes.HasPrefix(s.SignedBytes(), []byte(ContextSet)) {
		t.Fatal("segment SignedBytes does not start with the set context")
	}
}

func TestMalformed(t *testing.T) {
	good := sampleRequest().Marshal()
	long := sampleRequest()
	long.CaseRef = strings.Repeat("x", MaxTextLen+1)
	ctl := sampleRequest()
	ctl.Purpose = "a\nb"
	shortID := sampleRequest()
	shortID.ID = []byte{1}
	noSig := sampleRequest()
	noSig.Signature = nil
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"trailing", append(append([]byte{}, good...), 0)},
		{"truncated", good[:len(good)-1]},
		{"repeated field", append([]byte{0x0a, 16}, good...)},
		{"out of order", append(append([]byte{}, good[18:]...), good[:18]...)},
		{"unknown field", append(append([]byte{}, good...), 0x80, 0x01, 0x01)},
		{"explicit zero", append([]byte{0x10, 0}, good[18:]...)},
		{"wrong type", []byte{0x0d, 0, 0, 0, 0}},
		{"non-minimal varint", []byte{0x10, 0x81, 0x00}},
		{"text too long", long.Marshal()},
		{"control character", ctl.Marshal()},
		{"short ID", shortID.Marshal()},
		{"no signature", noSig.Marshal()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := UnmarshalMatchRequest(tt.b); !errors.Is(err, ErrMalformed) {
				t.Fatalf("UnmarshalMatchRequest = %v; want ErrMalformed", err)
			}
		})
	}
	bad := sampleAnswer()
	bad.Status = 9
	if _, err := UnmarshalMatchAnswer(bad.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("answer with status 9: err = %v; want ErrMalformed", err)
	}
	tooMany := sampleRequest()
	for len(tooMany.Reaches) <= MaxReaches {
		tooMany.Reaches = append(tooMany.Reaches, "open")
	}
	if _, err := UnmarshalMatchRequest(tooMany.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("request with %d reaches: err = %v; want ErrMalformed", len(tooMany.Reaches), err)
	}
	for name, change := range map[string]func(a *MatchAnswer){
		"evaluation missing":      func(a *MatchAnswer) { a.Evaluations = a.Evaluations[:1] },
		"evaluation extra":        func(a *MatchAnswer) { a.Evaluations = append(a.Evaluations, []byte{1}) },
		"evaluated without reach": func(a *MatchAnswer) { a.Evaluated[0].Reach = "" },
		"short evaluation digest": func(a *MatchAnswer) { a.Evaluated[0].EvaluationSHA256 = []byte{1} },
	} {
		a := sampleAnswer()
		change(a)
		if _, err := UnmarshalMatchAnswer(a.Marshal()); !errors.Is(err, ErrMalformed) {
			t.Errorf("answer with %s: err = %v; want ErrMalformed", name, err)
		}
	}
	many := sampleSyncAnswer()
	many.Segments = MaxSegments + 1
	if _, err := UnmarshalSyncAnswer(many.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Fatalf("sync answer with too many segments: err = %v; want ErrMalformed", err)
	}
}

func TestFrames(t *testing.T) {
	var buf bytes.Buffer
	for _, m := range [][]byte{[]byte("a"), bytes.Repeat([]byte{7}, 300), {}} {
		if err := WriteFrame(&buf, m); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf)
	for _, want := range []int{1, 300, 0} {
		got, err := ReadFrame(r, 300)
		if err != nil || len(got) != want {
			t.Fatalf("ReadFrame = %d bytes, %v; want %d bytes", len(got), err, want)
		}
	}
	if _, err := ReadFrame(r, 300); !errors.Is(err, io.EOF) {
		t.Fatalf("ReadFrame at the end = %v; want io.EOF", err)
	}

	tests := []struct {
		name  string
		b     []byte
		limit int
		want  error
	}{
		{"over the limit", []byte{0xac, 0x02}, 299, ErrMalformed},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 1 << 30, ErrMalformed},
		{"non-minimal length", []byte{0x81, 0x00, 0x00}, 10, ErrMalformed},
		{"truncated body", []byte{5, 1, 2}, 10, io.ErrUnexpectedEOF},
		{"truncated length", []byte{0x81}, 10, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ReadFrame(NewReader(bytes.NewReader(tt.b)), tt.limit); !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame = %v; want %v", err, tt.want)
			}
		})
	}
}

package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sampleFollowupRequest() *FollowupRequest {
	return &FollowupRequest{
		ID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 1_790_000_000_000, Querier: "GB", Owner: "TH",
		RequestID: bytes.Repeat([]byte{2}, IDSize), Kind: "phone", Epoch: 7, Mode: "safeguarding",
		Basis: "art. 4 FD 2006/960", Purpose: "identify the case officer", Urgent: true,
		Tags: []FollowupTag{
			{Reach: "open", Tag: bytes.Repeat([]byte{3}, HashSize)},
			{Reach: "victim", Tag: bytes.Repeat([]byte{4}, HashSize)},
		},
		Signature: bytes.Repeat([]byte{6}, SignatureSize),
	}
}

func sampleFollowupAck() *FollowupAck {
	return &FollowupAck{ID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 9, Owner: "TH", Querier: "GB",
		RequestSignatureSHA256: bytes.Repeat([]byte{5}, HashSize), Status: StatusOK,
		DeadlineUnixMs: 1_790_000_028_800_000, Signature: bytes.Repeat([]byte{6}, SignatureSize)}
}

func sampleFollowupPoll() *FollowupPoll {
	return &FollowupPoll{PollID: bytes.Repeat([]byte{7}, IDSize), TimeUnixMs: 11, Querier: "GB", Owner: "TH",
		FollowupID: bytes.Repeat([]byte{1}, IDSize), Signature: bytes.Repeat([]byte{6}, SignatureSize)}
}

func sampleFollowupAnswer() *FollowupAnswer {
	return &FollowupAnswer{
		FollowupID: bytes.Repeat([]byte{1}, IDSize), TimeUnixMs: 10, Owner: "TH", Querier: "GB",
		RequestID: bytes.Repeat([]byte{2}, IDSize), Outcome: OutcomeShared, Handling: "H2",
		Message: "call before acting",
		Shared: []Shared{
			{Hit: 1, Reference: "TH-2026-0042", Contact: "liaison desk, +66 2 000 0000"},
			{Hit: 2, Reference: "TH-2026-0077", Handling: "H3"},
		},
		Signature: bytes.Repeat([]byte{6}, SignatureSize),
	}
}

func sampleFollowupStatus() *FollowupStatus {
	return &FollowupStatus{PollID: bytes.Repeat([]byte{7}, IDSize), TimeUnixMs: 12, Owner: "TH", Querier: "GB",
		FollowupID: bytes.Repeat([]byte{1}, IDSize), Status: StatusOK, DeadlineUnixMs: 13,
		Answer: sampleFollowupAnswer().Marshal(), Signature: bytes.Repeat([]byte{6}, SignatureSize)}
}

func TestFollowupRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		msg    any
		enc    []byte
		decode func([]byte) (any, error)
	}{
		{"call with request", &FollowupCall{Request: sampleFollowupRequest()}, (&FollowupCall{Request: sampleFollowupRequest()}).Marshal(),
			func(b []byte) (any, error) { return UnmarshalFollowupCall(b) }},
		{"call with poll", &FollowupCall{Poll: sampleFollowupPoll()}, (&FollowupCall{Poll: sampleFollowupPoll()}).Marshal(),
			func(b []byte) (any, error) { return UnmarshalFollowupCall(b) }},
		{"request", sampleFollowupRequest(), sampleFollowupRequest().Marshal(), func(b []byte) (any, error) { return UnmarshalFollowupRequest(b) }},
		{"ack", sampleFollowupAck(), sampleFollowupAck().Marshal(), func(b []byte) (any, error) { return UnmarshalFollowupAck(b) }},
		{"poll", sampleFollowupPoll(), sampleFollowupPoll().Marshal(), func(b []byte) (any, error) { return UnmarshalFollowupPoll(b) }},
		{"status", sampleFollowupStatus(), sampleFollowupStatus().Marshal(), func(b []byte) (any, error) { return UnmarshalFollowupStatus(b) }},
		{"answer", sampleFollowupAnswer(), sampleFollowupAnswer().Marshal(), func(b []byte) (any, error) { return UnmarshalFollowupAnswer(b) }},
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

// TestFollowupGolden freezes the follow-up encodings (as TestGolden does
// the others): a change is a change of /xborder/followup/1.0.0.
func TestFollowupGolden(t *testing.T) {
	var b strings.Builder
	for _, m := range []struct {
		name string
		enc  []byte
	}{
		{"follow-up call", (&FollowupCall{Request: sampleFollowupRequest()}).Marshal()},
		{"follow-up request signed bytes", sampleFollowupRequest().SignedBytes()},
		{"follow-up ack", sampleFollowupAck().Marshal()},
		{"follow-up ack signed bytes", sampleFollowupAck().SignedBytes()},
		{"follow-up poll call", (&FollowupCall{Poll: sampleFollowupPoll()}).Marshal()},
		{"follow-up poll signed bytes", sampleFollowupPoll().SignedBytes()},
		{"follow-up status", sampleFollowupStatus().Marshal()},
		{"follow-up status signed bytes", sampleFollowupStatus().SignedBytes()},
		{"follow-up answer signed bytes", sampleFollowupAnswer().SignedBytes()},
	} {
		fmt.Fprintf(&b, "%s\n%s\n", m.name, hex.EncodeToString(m.enc))
	}
	path := filepath.Join("testdata", "followup.golden")
	if *update {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if got := b.String(); got != string(want) {
		t.Fatalf("encodings differ from %s:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestFollowupSignedBytes: each signature covers every field but itself,
// under its own context.
func TestFollowupSignedBytes(t *testing.T) {
	type signed interface{ SignedBytes() []byte }
	for name, tc := range map[string]struct {
		a, b signed
		ctx  string
	}{
		"request tag": {sampleFollowupRequest(), func() signed {
			m := sampleFollowupRequest()
			m.Tags[1].Tag = bytes.Repeat([]byte{9}, HashSize)
			return m
		}(), ContextFollowupRequest},
		"request reach": {sampleFollowupRequest(), func() signed { m := sampleFollowupRequest(); m.Tags[1].Reach = "witness"; return m }(), ContextFollowupRequest},
		"request ID":    {sampleFollowupRequest(), func() signed { m := sampleFollowupRequest(); m.RequestID[0] = 9; return m }(), ContextFollowupRequest},
		"ack deadline":  {sampleFollowupAck(), func() signed { m := sampleFollowupAck(); m.DeadlineUnixMs++; return m }(), ContextFollowupAck},
		"poll ID":       {sampleFollowupPoll(), func() signed { m := sampleFollowupPoll(); m.FollowupID[0] = 9; return m }(), ContextFollowupPoll},
		"status answer": {sampleFollowupStatus(), func() signed { m := sampleFollowupStatus(); m.Answer = nil; return m }(), ContextFollowupStatus},
		"answer reference": {sampleFollowupAnswer(), func() signed {
			m := sampleFollowupAnswer()
			m.Shared[0].Reference = "TH-2026-0043"
			return m
		}(), ContextFollowupAnswer},
	} {
		if bytes.Equal(tc.a.SignedBytes(), tc.b.SignedBytes()) {
			t.Errorf("%s: SignedBytes does not cover it", name)
		}
		if !bytes.HasPrefix(tc.a.SignedBytes(), []byte(tc.ctx)) {
			t.Errorf("%s: SignedBytes does not start with %q", name, tc.ctx)
		}
	}
	a, b := sampleFollowupAnswer(), sampleFollowupAnswer()
	b.Signature = bytes.Repeat([]byte{8}, SignatureSize)
	if !bytes.Equal(a.SignedBytes(), b.SignedBytes()) {
		t.Error("answer SignedBytes depends on the signature")
	}
}

func TestFollowupMalformed(t *testing.T) {
	bad := map[string][]byte{}
	many := sampleFollowupRequest()
	for len(many.Tags) <= MaxFollowupTags {
		many.Tags = append(many.Tags, FollowupTag{Reach: "open", Tag: bytes.Repeat([]byte{byte(len(many.Tags))}, HashSize)})
	}
	bad["request with 65 tags"] = many.Marshal()
	noTags := sampleFollowupRequest()
	noTags.Tags = nil
	bad["request without tags"] = noTags.Marshal()
	shortTag := sampleFollowupRequest()
	shortTag.Tags[0].Tag = []byte{1, 2}
	bad["request with a short tag"] = shortTag.Marshal()
	noReach := sampleFollowupRequest()
	noReach.Tags[0].Reach = ""
	bad["request with a tag without reach"] = noReach.Marshal()
	noReq := sampleFollowupRequest()
	noReq.RequestID = nil
	bad["request without request ID"] = noReq.Marshal()
	ctl := sampleFollowupRequest()
	ctl.Purpose = "a\x00b"
	bad["request with a control character"] = ctl.Marshal()
	for name, b := range bad {
		if _, err := UnmarshalFollowupRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v; want ErrMalformed", name, err)
		}
	}
	if _, err := UnmarshalFollowupCall(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty call: err = %v; want ErrMalformed", err)
	}
	both := (&FollowupCall{Request: sampleFollowupRequest(), Poll: sampleFollowupPoll()}).Marshal()
	if _, err := UnmarshalFollowupCall(both); !errors.Is(err, ErrMalformed) {
		t.Errorf("call with request and poll: err = %v; want ErrMalformed", err)
	}
	for name, change := range map[string]func(a *FollowupAnswer){
		"hit 0":             func(a *FollowupAnswer) { a.Shared[0].Hit = 0 },
		"hit 65":            func(a *FollowupAnswer) { a.Shared[0].Hit = MaxFollowupTags + 1 },
		"outcome 3":         func(a *FollowupAnswer) { a.Outcome = 3 },
		"long reference":    func(a *FollowupAnswer) { a.Shared[0].Reference = strings.Repeat("r", MaxShortText+1) },
		"no outcome":        func(a *FollowupAnswer) { a.Outcome = 0 },
		"no signature":      func(a *FollowupAnswer) { a.Signature = nil },
		"newline in reason": func(a *FollowupAnswer) { a.Reason = "no\nway" },
	} {
		a := sampleFollowupAnswer()
		change(a)
		if _, err := UnmarshalFollowupAnswer(a.Marshal()); !errors.Is(err, ErrMalformed) {
			t.Errorf("answer with %s: err = %v; want ErrMalformed", name, err)
		}
	}
	ack := sampleFollowupAck()
	ack.Status = 7
	if _, err := UnmarshalFollowupAck(ack.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("ack with status 7: err = %v; want ErrMalformed", err)
	}
	st := sampleFollowupStatus()
	st.Answer = bytes.Repeat([]byte{1}, MaxFollowupAnswer+1)
	if _, err := UnmarshalFollowupStatus(st.Marshal()); !errors.Is(err, ErrMalformed) {
		t.Errorf("status with an oversized answer: err = %v; want ErrMalformed", err)
	}
	// The largest request and answer fit their frames.
	full := sampleFollowupRequest()
	full.Basis, full.Purpose = strings.Repeat("b", MaxTextLen), strings.Repeat("p", MaxTextLen)
	full.Tags = nil
	for i := range MaxFollowupTags {
		full.Tags = append(full.Tags, FollowupTag{Reach: "witness", Tag: bytes.Repeat([]byte{byte(i + 1)}, HashSize)})
	}
	if n := len((&FollowupCall{Request: full}).Marshal()); n > MaxFollowupCall {
		t.Errorf("largest follow-up call of %d bytes over MaxFollowupCall %d", n, MaxFollowupCall)
	}
	fa := sampleFollowupAnswer()
	fa.Reason, fa.Message = strings.Repeat("r", MaxTextLen), strings.Repeat("m", MaxTextLen)
	fa.Shared = nil
	for i := range MaxFollowupTags {
		fa.Shared = append(fa.Shared, Shared{Hit: uint64(i + 1), Reference: strings.Repeat("R", MaxShortText),
			Contact: strings.Repeat("C", MaxShortText), Handling: strings.Repeat("H", MaxNameLen)})
	}
	if _, err := UnmarshalFollowupAnswer(fa.Marshal()); err != nil {
		t.Errorf("largest answer: %v", err)
	}
	if n := len(fa.Marshal()); n > MaxFollowupAnswer {
		t.Errorf("largest answer of %d bytes over MaxFollowupAnswer %d", n, MaxFollowupAnswer)
	}
}

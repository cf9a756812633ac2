package wire

import "google.golang.org/protobuf/encoding/protowire"

// head encodes fields 1 to 15 of a match request: everything the signature
// covers.
func (m *MatchRequest) head() encoder {
	var e encoder
	e.bytes(1, m.ID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Querier)
	e.str(4, m.Responder)
	e.str(5, m.Kind)
	e.uint(6, m.Epoch)
	e.uint(7, m.PaddedSize)
	e.str(8, m.CaseRef)
	e.str(9, m.LegalBasis)
	e.str(10, m.Offence)
	e.str(11, m.Purpose)
	e.bool(12, m.Urgent)
	e.bytes(13, m.BatchSHA256)
	e.str(14, m.Mode)
	for _, r := range m.Reaches {
		e.str(15, r)
	}
	return e
}

// SignedBytes returns what the querier signs: ContextMatchRequest and
// fields 1 to 15.
func (m *MatchRequest) SignedBytes() []byte {
	return append([]byte(ContextMatchRequest), m.head()...)
}

// Marshal encodes the request.
func (m *MatchRequest) Marshal() []byte {
	e := m.head()
	e.bytes(16, m.EvalRequest)
	e.bytes(17, m.Signature)
	return e
}

// UnmarshalMatchRequest decodes a request; it wraps ErrMalformed.
func UnmarshalMatchRequest(b []byte) (*MatchRequest, error) {
	d := decoder{msg: "match request", b: b, repeated: []protowire.Number{15}}
	m := new(MatchRequest)
	for f, ok := d.next(17); ok; f, ok = d.next(17) {
		switch f.num {
		case 1:
			m.ID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Querier = d.text(f, MaxNameLen)
		case 4:
			m.Responder = d.text(f, MaxNameLen)
		case 5:
			m.Kind = d.text(f, MaxNameLen)
		case 6:
			m.Epoch = d.varint(f)
		case 7:
			m.PaddedSize = d.varint(f)
		case 8:
			m.CaseRef = d.text(f, MaxTextLen)
		case 9:
			m.LegalBasis = d.text(f, MaxTextLen)
		case 10:
			m.Offence = d.text(f, MaxTextLen)
		case 11:
			m.Purpose = d.text(f, MaxTextLen)
		case 12:
			m.Urgent = d.boolean(f)
		case 13:
			m.BatchSHA256 = d.fixed(f, HashSize)
		case 14:
			m.Mode = d.text(f, MaxNameLen)
		case 15:
			if len(m.Reaches) == MaxReaches {
				d.fail("more than %d reaches", MaxReaches)
			}
			m.Reaches = append(m.Reaches, d.text(f, MaxNameLen))
		case 16:
			m.EvalRequest = d.blob(f, MaxMatchRequest)
		case 17:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.ID == nil || m.Signature == nil || m.BatchSHA256 == nil || m.EvalRequest == nil {
		d.fail("missing ID, batch digest, batch or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *MatchAnswer) head() encoder {
	var e encoder
	e.bytes(1, m.ID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Responder)
	e.str(4, m.Querier)
	e.uint(5, uint64(m.Status))
	e.str(6, m.Reason)
	e.bytes(7, m.BatchSHA256)
	for _, ev := range m.Evaluated {
		e.bytes(8, ev.marshal())
	}
	return e
}

func (m *Evaluated) marshal() []byte {
	var e encoder
	e.str(1, m.Reach)
	e.uint(2, m.SetVersion)
	e.bytes(3, m.EvaluationSHA256)
	return e
}

func unmarshalEvaluated(b []byte) (Evaluated, error) {
	d := decoder{msg: "evaluated", b: b}
	var m Evaluated
	for f, ok := d.next(3); ok; f, ok = d.next(3) {
		switch f.num {
		case 1:
			m.Reach = d.text(f, MaxNameLen)
		case 2:
			m.SetVersion = d.varint(f)
		case 3:
			m.EvaluationSHA256 = d.fixed(f, HashSize)
		}
	}
	if err := d.done(); err != nil {
		return m, err
	}
	if m.Reach == "" || m.EvaluationSHA256 == nil {
		d.fail("missing reach or evaluation digest")
	}
	return m, d.err
}

// SignedBytes returns what the responder signs: ContextMatchAnswer and
// fields 1 to 8.
func (m *MatchAnswer) SignedBytes() []byte {
	return append([]byte(ContextMatchAnswer), m.head()...)
}

// Marshal encodes the answer.
func (m *MatchAnswer) Marshal() []byte {
	e := m.head()
	for _, ev := range m.Evaluations {
		e.bytes(9, ev)
	}
	e.bytes(10, m.Signature)
	return e
}

// UnmarshalMatchAnswer decodes an answer; it wraps ErrMalformed.
func UnmarshalMatchAnswer(b []byte) (*MatchAnswer, error) {
	d := decoder{msg: "match answer", b: b, repeated: []protowire.Number{8, 9}}
	m := new(MatchAnswer)
	for f, ok := d.next(10); ok; f, ok = d.next(10) {
		switch f.num {
		case 1:
			m.ID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Responder = d.text(f, MaxNameLen)
		case 4:
			m.Querier = d.text(f, MaxNameLen)
		case 5:
			m.Status = d.status(f)
		case 6:
			m.Reason = d.text(f, MaxNameLen)
		case 7:
			m.BatchSHA256 = d.fixed(f, HashSize)
		case 8:
			if len(m.Evaluated) == MaxReaches {
				d.fail("more than %d evaluations", MaxReaches)
			}
			ev, err := unmarshalEvaluated(d.blob(f, 256))
			if err != nil && d.err == nil {
				d.err = err
			}
			m.Evaluated = append(m.Evaluated, ev)
		case 9:
			if len(m.Evaluations) == len(m.Evaluated) {
				d.fail("more evaluations than evaluated reaches")
			}
			m.Evaluations = append(m.Evaluations, d.blob(f, MaxMatchAnswer))
		case 10:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.ID == nil || m.Signature == nil || m.Status == 0 || len(m.Evaluations) != len(m.Evaluated) {
		d.fail("missing ID, status, signature or evaluation")
		return nil, d.err
	}
	return m, nil
}

func (m *SyncRequest) head() encoder {
	var e encoder
	e.bytes(1, m.ID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Querier)
	e.str(4, m.Owner)
	e.str(5, m.Kind)
	e.uint(6, m.Epoch)
	e.uint(7, m.Base)
	e.uint(8, m.Version)
	e.str(9, m.Reach)
	return e
}

// SignedBytes returns what the querier signs: ContextSyncRequest and fields
// 1 to 9.
func (m *SyncRequest) SignedBytes() []byte {
	return append([]byte(ContextSyncRequest), m.head()...)
}

// Marshal encodes the request.
func (m *SyncRequest) Marshal() []byte {
	e := m.head()
	e.bytes(10, m.Signature)
	return e
}

// UnmarshalSyncRequest decodes a sync request; it wraps ErrMalformed.
func UnmarshalSyncRequest(b []byte) (*SyncRequest, error) {
	d := decoder{msg: "sync request", b: b}
	m := new(SyncRequest)
	for f, ok := d.next(10); ok; f, ok = d.next(10) {
		switch f.num {
		case 1:
			m.ID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Querier = d.text(f, MaxNameLen)
		case 4:
			m.Owner = d.text(f, MaxNameLen)
		case 5:
			m.Kind = d.text(f, MaxNameLen)
		case 6:
			m.Epoch = d.varint(f)
		case 7:
			m.Base = d.varint(f)
		case 8:
			m.Version = d.varint(f)
		case 9:
			m.Reach = d.text(f, MaxNameLen)
		case 10:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.ID == nil || m.Signature == nil {
		d.fail("missing ID or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *SyncAnswer) head() encoder {
	var e encoder
	e.bytes(1, m.ID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Owner)
	e.str(4, m.Querier)
	e.uint(5, uint64(m.Status))
	e.str(6, m.Reason)
	e.bytes(7, m.Card)
	e.uint(8, m.Segments)
	return e
}

// SignedBytes returns what the owner signs: ContextSyncAnswer and fields 1
// to 8.
func (m *SyncAnswer) SignedBytes() []byte {
	return append([]byte(ContextSyncAnswer), m.head()...)
}

// Marshal encodes the answer head.
func (m *SyncAnswer) Marshal() []byte {
	e := m.head()
	e.bytes(9, m.Signature)
	return e
}

// UnmarshalSyncAnswer decodes a sync answer head; it wraps ErrMalformed.
func UnmarshalSyncAnswer(b []byte) (*SyncAnswer, error) {
	d := decoder{msg: "sync answer", b: b}
	m := new(SyncAnswer)
	for f, ok := d.next(9); ok; f, ok = d.next(9) {
		switch f.num {
		case 1:
			m.ID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Owner = d.text(f, MaxNameLen)
		case 4:
			m.Querier = d.text(f, MaxNameLen)
		case 5:
			m.Status = d.status(f)
		case 6:
			m.Reason = d.text(f, MaxNameLen)
		case 7:
			m.Card = d.blob(f, MaxCardLen)
		case 8:
			m.Segments = d.varint(f)
			if m.Segments > MaxSegments {
				d.fail("%d segments over %d", m.Segments, MaxSegments)
			}
		case 9:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.ID == nil || m.Signature == nil || m.Status == 0 {
		d.fail("missing ID, status or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *Segment) head() encoder {
	var e encoder
	e.str(1, m.Owner)
	e.str(2, m.Kind)
	e.uint(3, m.Epoch)
	e.uint(4, m.Base)
	e.uint(5, m.Version)
	e.bytes(6, m.SHA256)
	e.str(7, m.Reach)
	return e
}

// SignedBytes returns what the owner signs: ContextSet and fields 1 to 7
// (agency, kind, epoch, base, version, digest, reach).
func (m *Segment) SignedBytes() []byte {
	return append([]byte(ContextSet), m.head()...)
}

// Marshal encodes the segment.
func (m *Segment) Marshal() []byte {
	e := m.head()
	e.bytes(8, m.Data)
	e.bytes(9, m.Signature)
	return e
}

// UnmarshalSegment decodes a segment; it wraps ErrMalformed.
func UnmarshalSegment(b []byte) (*Segment, error) {
	d := decoder{msg: "set segment", b: b}
	m := new(Segment)
	for f, ok := d.next(9); ok; f, ok = d.next(9) {
		switch f.num {
		case 1:
			m.Owner = d.text(f, MaxNameLen)
		case 2:
			m.Kind = d.text(f, MaxNameLen)
		case 3:
			m.Epoch = d.varint(f)
		case 4:
			m.Base = d.varint(f)
		case 5:
			m.Version = d.varint(f)
		case 6:
			m.SHA256 = d.fixed(f, HashSize)
		case 7:
			m.Reach = d.text(f, MaxNameLen)
		case 8:
			m.Data = d.blob(f, MaxSegment)
		case 9:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.SHA256 == nil || m.Data == nil || m.Signature == nil {
		d.fail("missing digest, data or signature")
		return nil, d.err
	}
	return m, nil
}

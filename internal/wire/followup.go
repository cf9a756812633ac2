package wire

import "google.golang.org/protobuf/encoding/protowire"

// Messages of the follow-up protocol (/xborder/followup/1.0.0, issue 23):
// after a hit, the querier names hits by their tags (FollowupRequest) and
// the owner acknowledges (FollowupAck); later the querier polls
// (FollowupPoll) and the owner replies with the state (FollowupStatus),
// which carries the owner's signed decision (FollowupAnswer) once its
// liaison has made one. A stream opens with one FollowupCall, which holds
// either a request or a poll. docs/followup.md has the field tables.

// Limits of the follow-up messages.
const (
	// MaxFollowupTags caps the tags (hits) one follow-up names.
	MaxFollowupTags = 64
	// MaxShortText caps a reference or a contact point of an answer.
	MaxShortText = 256
	// MaxFollowupCall bounds a follow-up call frame: 64 tags and the
	// metadata.
	MaxFollowupCall = 8 << 10
	// MaxFollowupAck bounds an acknowledgement frame.
	MaxFollowupAck = 1 << 10
	// MaxFollowupAnswer bounds a signed answer: 64 shared records of
	// reference, contact and handling, and the message.
	MaxFollowupAnswer = 48 << 10
	// MaxFollowupStatus bounds a poll's reply frame, the answer included.
	MaxFollowupStatus = MaxFollowupAnswer + 1<<10
)

// Signing contexts of the follow-up messages.
const (
	ContextFollowupRequest = "xborder/v1/followup-request\x00"
	ContextFollowupAck     = "xborder/v1/followup-ack\x00"
	ContextFollowupPoll    = "xborder/v1/followup-poll\x00"
	ContextFollowupStatus  = "xborder/v1/followup-status\x00"
	ContextFollowupAnswer  = "xborder/v1/followup-answer\x00"
)

// Outcomes of a FollowupAnswer.
const (
	// OutcomeShared: the owner shares what Shared lists.
	OutcomeShared uint64 = 1
	// OutcomeRefused: the owner refuses, for Reason.
	OutcomeRefused uint64 = 2
)

// FollowupCall opens a follow-up stream: exactly one of Request and Poll.
type FollowupCall struct {
	Request *FollowupRequest // 1, embedded
	Poll    *FollowupPoll    // 2, embedded
}

// FollowupRequest is a querier's signed follow-up of hits of one match
// request it sent to Owner.
type FollowupRequest struct {
	ID         []byte        // 1: IDSize random bytes, the follow-up ID
	TimeUnixMs uint64        // 2: the querier's clock
	Querier    string        // 3
	Owner      string        // 4
	RequestID  []byte        // 5: the match request's ID
	Kind       string        // 6
	Epoch      uint64        // 7
	Mode       string        // 8: the match request's mode
	Basis      string        // 9: legal basis of the follow-up
	Purpose    string        // 10
	Urgent     bool          // 11
	Tags       []FollowupTag // 12, repeated: 1 to MaxFollowupTags
	Signature  []byte        // 13
}

// FollowupTag is one hit named by its tag (an embedded message).
type FollowupTag struct {
	Reach string // 1: the reach whose key's output the tag is of
	Tag   []byte // 2: HashSize bytes (psi.Tag)
}

// FollowupAck is the owner's signed reply to a FollowupRequest: accepted
// (StatusOK, with the deadline of the answer), denied (Reason) or
// unavailable.
type FollowupAck struct {
	ID                     []byte // 1: the follow-up ID
	TimeUnixMs             uint64 // 2: the owner's clock
	Owner                  string // 3
	Querier                string // 4
	RequestSignatureSHA256 []byte // 5: SHA-256 of the request's signature
	Status                 Status // 6
	Reason                 string // 7
	DeadlineUnixMs         uint64 // 8: when accepted
	Signature              []byte // 9
}

// FollowupPoll asks the owner for the state of a follow-up.
type FollowupPoll struct {
	PollID     []byte // 1: IDSize random bytes
	TimeUnixMs uint64 // 2
	Querier    string // 3
	Owner      string // 4
	FollowupID []byte // 5
	Signature  []byte // 6
}

// FollowupStatus is the owner's signed reply to a poll: for StatusOK the
// deadline and, once decided, the signed answer (absent while pending).
type FollowupStatus struct {
	PollID         []byte // 1: the poll's ID
	TimeUnixMs     uint64 // 2: the owner's clock
	Owner          string // 3
	Querier        string // 4
	FollowupID     []byte // 5
	Status         Status // 6
	Reason         string // 7
	DeadlineUnixMs uint64 // 8
	Answer         []byte // 9: a FollowupAnswer, encoded, at most MaxFollowupAnswer
	Signature      []byte // 10
}

// FollowupAnswer is the owner's signed decision on a follow-up, made once
// and served unchanged on every poll after.
type FollowupAnswer struct {
	FollowupID []byte   // 1
	TimeUnixMs uint64   // 2: when the owner decided
	Owner      string   // 3
	Querier    string   // 4
	RequestID  []byte   // 5: the match request's ID
	Outcome    uint64   // 6: OutcomeShared or OutcomeRefused
	Reason     string   // 7: text, when refused
	Handling   string   // 8: handling code of what is shared
	Message    string   // 9: text
	Shared     []Shared // 10, repeated: at most MaxFollowupTags
	Signature  []byte   // 11
}

// Shared is what the owner shares of the record one hit named (an
// embedded message).
type Shared struct {
	Hit       uint64 // 1: the position of the hit's tag in the request, from 1
	Reference string // 2: the owner's record reference
	Contact   string // 3: the contact point for the record
	Handling  string // 4: the record's handling code, when it differs from the answer's
}

// Marshal encodes the call.
func (m *FollowupCall) Marshal() []byte {
	var e encoder
	if m.Request != nil {
		e.bytes(1, m.Request.Marshal())
	}
	if m.Poll != nil {
		e.bytes(2, m.Poll.Marshal())
	}
	return e
}

// UnmarshalFollowupCall decodes a call; it wraps ErrMalformed.
func UnmarshalFollowupCall(b []byte) (*FollowupCall, error) {
	d := decoder{msg: "follow-up call", b: b}
	m := new(FollowupCall)
	for f, ok := d.next(2); ok; f, ok = d.next(2) {
		body := d.blob(f, MaxFollowupCall)
		if d.err != nil {
			break
		}
		var err error
		switch f.num {
		case 1:
			m.Request, err = UnmarshalFollowupRequest(body)
		case 2:
			m.Poll, err = UnmarshalFollowupPoll(body)
		}
		if err != nil && d.err == nil {
			d.err = err
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if (m.Request == nil) == (m.Poll == nil) {
		d.fail("want exactly one of request and poll")
		return nil, d.err
	}
	return m, nil
}

func (m *FollowupRequest) head() encoder {
	var e encoder
	e.bytes(1, m.ID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Querier)
	e.str(4, m.Owner)
	e.bytes(5, m.RequestID)
	e.str(6, m.Kind)
	e.uint(7, m.Epoch)
	e.str(8, m.Mode)
	e.str(9, m.Basis)
	e.str(10, m.Purpose)
	e.bool(11, m.Urgent)
	for _, t := range m.Tags {
		var te encoder
		te.str(1, t.Reach)
		te.bytes(2, t.Tag)
		e.bytes(12, te)
	}
	return e
}

// SignedBytes returns what the querier signs: ContextFollowupRequest and
// fields 1 to 12.
func (m *FollowupRequest) SignedBytes() []byte {
	return append([]byte(ContextFollowupRequest), m.head()...)
}

// Marshal encodes the request.
func (m *FollowupRequest) Marshal() []byte {
	e := m.head()
	e.bytes(13, m.Signature)
	return e
}

// UnmarshalFollowupRequest decodes a request; it wraps ErrMalformed.
func UnmarshalFollowupRequest(b []byte) (*FollowupRequest, error) {
	d := decoder{msg: "follow-up request", b: b, repeated: []protowire.Number{12}}
	m := new(FollowupRequest)
	for f, ok := d.next(13); ok; f, ok = d.next(13) {
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
			m.RequestID = d.fixed(f, IDSize)
		case 6:
			m.Kind = d.text(f, MaxNameLen)
		case 7:
			m.Epoch = d.varint(f)
		case 8:
			m.Mode = d.text(f, MaxNameLen)
		case 9:
			m.Basis = d.text(f, MaxTextLen)
		case 10:
			m.Purpose = d.text(f, MaxTextLen)
		case 11:
			m.Urgent = d.boolean(f)
		case 12:
			if len(m.Tags) == MaxFollowupTags {
				d.fail("more than %d tags", MaxFollowupTags)
			}
			td := decoder{msg: "follow-up tag", b: d.blob(f, 128)}
			var t FollowupTag
			for tf, ok := td.next(2); ok; tf, ok = td.next(2) {
				switch tf.num {
				case 1:
					t.Reach = td.text(tf, MaxNameLen)
				case 2:
					t.Tag = td.fixed(tf, HashSize)
				}
			}
			if err := td.done(); err == nil && (t.Reach == "" || t.Tag == nil) {
				td.fail("missing reach or tag")
			}
			if td.err != nil && d.err == nil {
				d.err = td.err
			}
			m.Tags = append(m.Tags, t)
		case 13:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.ID == nil || m.RequestID == nil || len(m.Tags) == 0 || m.Signature == nil {
		d.fail("missing ID, request ID, tags or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *FollowupAck) head() encoder {
	var e encoder
	e.bytes(1, m.ID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Owner)
	e.str(4, m.Querier)
	e.bytes(5, m.RequestSignatureSHA256)
	e.uint(6, uint64(m.Status))
	e.str(7, m.Reason)
	e.uint(8, m.DeadlineUnixMs)
	return e
}

// SignedBytes returns what the owner signs: ContextFollowupAck and fields
// 1 to 8.
func (m *FollowupAck) SignedBytes() []byte {
	return append([]byte(ContextFollowupAck), m.head()...)
}

// Marshal encodes the acknowledgement.
func (m *FollowupAck) Marshal() []byte {
	e := m.head()
	e.bytes(9, m.Signature)
	return e
}

// UnmarshalFollowupAck decodes an acknowledgement; it wraps ErrMalformed.
func UnmarshalFollowupAck(b []byte) (*FollowupAck, error) {
	d := decoder{msg: "follow-up ack", b: b}
	m := new(FollowupAck)
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
			m.RequestSignatureSHA256 = d.fixed(f, HashSize)
		case 6:
			m.Status = d.status(f)
		case 7:
			m.Reason = d.text(f, MaxNameLen)
		case 8:
			m.DeadlineUnixMs = d.varint(f)
		case 9:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.ID == nil || m.RequestSignatureSHA256 == nil || m.Status == 0 || m.Signature == nil {
		d.fail("missing ID, request digest, status or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *FollowupPoll) head() encoder {
	var e encoder
	e.bytes(1, m.PollID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Querier)
	e.str(4, m.Owner)
	e.bytes(5, m.FollowupID)
	return e
}

// SignedBytes returns what the querier signs: ContextFollowupPoll and
// fields 1 to 5.
func (m *FollowupPoll) SignedBytes() []byte {
	return append([]byte(ContextFollowupPoll), m.head()...)
}

// Marshal encodes the poll.
func (m *FollowupPoll) Marshal() []byte {
	e := m.head()
	e.bytes(6, m.Signature)
	return e
}

// UnmarshalFollowupPoll decodes a poll; it wraps ErrMalformed.
func UnmarshalFollowupPoll(b []byte) (*FollowupPoll, error) {
	d := decoder{msg: "follow-up poll", b: b}
	m := new(FollowupPoll)
	for f, ok := d.next(6); ok; f, ok = d.next(6) {
		switch f.num {
		case 1:
			m.PollID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Querier = d.text(f, MaxNameLen)
		case 4:
			m.Owner = d.text(f, MaxNameLen)
		case 5:
			m.FollowupID = d.fixed(f, IDSize)
		case 6:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.PollID == nil || m.FollowupID == nil || m.Signature == nil {
		d.fail("missing poll ID, follow-up ID or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *FollowupStatus) head() encoder {
	var e encoder
	e.bytes(1, m.PollID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Owner)
	e.str(4, m.Querier)
	e.bytes(5, m.FollowupID)
	e.uint(6, uint64(m.Status))
	e.str(7, m.Reason)
	e.uint(8, m.DeadlineUnixMs)
	e.bytes(9, m.Answer)
	return e
}

// SignedBytes returns what the owner signs: ContextFollowupStatus and
// fields 1 to 9.
func (m *FollowupStatus) SignedBytes() []byte {
	return append([]byte(ContextFollowupStatus), m.head()...)
}

// Marshal encodes the status.
func (m *FollowupStatus) Marshal() []byte {
	e := m.head()
	e.bytes(10, m.Signature)
	return e
}

// UnmarshalFollowupStatus decodes a poll's reply; it wraps ErrMalformed.
// The answer it carries stays encoded (UnmarshalFollowupAnswer).
func UnmarshalFollowupStatus(b []byte) (*FollowupStatus, error) {
	d := decoder{msg: "follow-up status", b: b}
	m := new(FollowupStatus)
	for f, ok := d.next(10); ok; f, ok = d.next(10) {
		switch f.num {
		case 1:
			m.PollID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Owner = d.text(f, MaxNameLen)
		case 4:
			m.Querier = d.text(f, MaxNameLen)
		case 5:
			m.FollowupID = d.fixed(f, IDSize)
		case 6:
			m.Status = d.status(f)
		case 7:
			m.Reason = d.text(f, MaxNameLen)
		case 8:
			m.DeadlineUnixMs = d.varint(f)
		case 9:
			m.Answer = d.blob(f, MaxFollowupAnswer)
		case 10:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.PollID == nil || m.FollowupID == nil || m.Status == 0 || m.Signature == nil {
		d.fail("missing poll ID, follow-up ID, status or signature")
		return nil, d.err
	}
	return m, nil
}

func (m *FollowupAnswer) head() encoder {
	var e encoder
	e.bytes(1, m.FollowupID)
	e.uint(2, m.TimeUnixMs)
	e.str(3, m.Owner)
	e.str(4, m.Querier)
	e.bytes(5, m.RequestID)
	e.uint(6, m.Outcome)
	e.str(7, m.Reason)
	e.str(8, m.Handling)
	e.str(9, m.Message)
	for _, s := range m.Shared {
		var se encoder
		se.uint(1, s.Hit)
		se.str(2, s.Reference)
		se.str(3, s.Contact)
		se.str(4, s.Handling)
		e.bytes(10, se)
	}
	return e
}

// SignedBytes returns what the owner signs: ContextFollowupAnswer and
// fields 1 to 10.
func (m *FollowupAnswer) SignedBytes() []byte {
	return append([]byte(ContextFollowupAnswer), m.head()...)
}

// Marshal encodes the answer.
func (m *FollowupAnswer) Marshal() []byte {
	e := m.head()
	e.bytes(11, m.Signature)
	return e
}

// UnmarshalFollowupAnswer decodes an answer; it wraps ErrMalformed.
func UnmarshalFollowupAnswer(b []byte) (*FollowupAnswer, error) {
	d := decoder{msg: "follow-up answer", b: b, repeated: []protowire.Number{10}}
	m := new(FollowupAnswer)
	for f, ok := d.next(11); ok; f, ok = d.next(11) {
		switch f.num {
		case 1:
			m.FollowupID = d.fixed(f, IDSize)
		case 2:
			m.TimeUnixMs = d.varint(f)
		case 3:
			m.Owner = d.text(f, MaxNameLen)
		case 4:
			m.Querier = d.text(f, MaxNameLen)
		case 5:
			m.RequestID = d.fixed(f, IDSize)
		case 6:
			m.Outcome = d.varint(f)
			if m.Outcome != OutcomeShared && m.Outcome != OutcomeRefused {
				d.fail("outcome %d", m.Outcome)
			}
		case 7:
			m.Reason = d.text(f, MaxTextLen)
		case 8:
			m.Handling = d.text(f, MaxNameLen)
		case 9:
			m.Message = d.text(f, MaxTextLen)
		case 10:
			if len(m.Shared) == MaxFollowupTags {
				d.fail("more than %d shared records", MaxFollowupTags)
			}
			sd := decoder{msg: "shared record", b: d.blob(f, 1024)}
			var s Shared
			for sf, ok := sd.next(4); ok; sf, ok = sd.next(4) {
				switch sf.num {
				case 1:
					s.Hit = sd.varint(sf)
				case 2:
					s.Reference = sd.text(sf, MaxShortText)
				case 3:
					s.Contact = sd.text(sf, MaxShortText)
				case 4:
					s.Handling = sd.text(sf, MaxNameLen)
				}
			}
			if err := sd.done(); err == nil && (s.Hit == 0 || s.Hit > MaxFollowupTags) {
				sd.fail("hit %d out of 1 to %d", s.Hit, MaxFollowupTags)
			}
			if sd.err != nil && d.err == nil {
				d.err = sd.err
			}
			m.Shared = append(m.Shared, s)
		case 11:
			m.Signature = d.fixed(f, SignatureSize)
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	if m.FollowupID == nil || m.RequestID == nil || m.Outcome == 0 || m.Signature == nil {
		d.fail("missing follow-up ID, request ID, outcome or signature")
		return nil, d.err
	}
	return m, nil
}

package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// maxRequestJSON bounds the request JSON ParseRequest reads.
const maxRequestJSON = 1 << 20

// ParseRequest decodes a request from its JSON form (docs/policy.md): the
// field names of Request's JSON tags, time in RFC 3339. Unknown fields,
// trailing data and documents over 1 MiB are errors, so a misspelt field
// never passes silently as its zero value.
func ParseRequest(b []byte) (Request, error) {
	var r Request
	if len(b) > maxRequestJSON {
		return r, fmt.Errorf("parse request: %d bytes is over the limit of %d", len(b), maxRequestJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Request{}, fmt.Errorf("parse request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Request{}, errors.New("parse request: trailing data after the JSON object")
	}
	return r, nil
}

package format

import (
	"bytes"
	"encoding/json"
	"testing"
)

func FuzzCheckLine(f *testing.F) {
	line, _ := json.Marshal(testLines(f, "q", 1, 0)[0])
	f.Add(line)
	f.Add([]byte(`{"index":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := checkLine(0, b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeLeaf(&l.Header), l.Leaf) {
			t.Errorf("checkLine accepted a header that is not its leaf")
		}
		if l.Body != nil && BodyHash(*l.Salt, *l.Body) != l.Header.BodyHash {
			t.Errorf("checkLine accepted a body that does not match")
		}
	})
}

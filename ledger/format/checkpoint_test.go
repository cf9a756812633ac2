package format

import "testing"

func FuzzParseCheckpoint(f *testing.F) {
	skey, vk := testKey(f, "agency")
	f.Add(sign(f, skey, testLines(f, "q", 3, 0)))
	f.Add([]byte("xborder.ledger/GB\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— xborder.ledger/GB abcd\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := ParseCheckpoint(b, vk)
		if err == nil && cp.Origin != Origin("GB") {
			t.Errorf("ParseCheckpoint accepted origin %q", cp.Origin)
		}
	})
}

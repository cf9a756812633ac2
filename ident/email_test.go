package ident

import (
	"errors"
	"strings"
	"testing"
)

// TestEmailJoiners holds IDNA2008's CONTEXTJ rules (RFC 5892, appendix A)
// for ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER in an address, on both
// sides of the @: kept where the rules allow them, since they make another
// name (Persian می‌خواهم is not میخواهم), and refused where they forbid
// them, never deleted silently (issue 19, item 10).
func TestEmailJoiners(t *testing.T) {
	const (
		zwnj = "\u200c"
		zwj  = "\u200d"
	)
	persian := "می" + zwnj + "خواهم" // ZWNJ between two dual-joining letters
	devanagari := "क्" + zwj + "ष"   // ZWJ after a virama
	for _, v := range []string{
		"a@" + persian + ".ir",
		persian + "@example.ir",
		"a@" + devanagari + ".in",
		devanagari + "@example.in",
	} {
		c, err := Canonical(Email, v, Options{})
		if err != nil {
			t.Errorf("Canonical(email, %q): %v; want the joiner kept", v, err)
			continue
		}
		if again, err := Canonical(Email, c, Options{}); err != nil || again != c {
			t.Errorf("Canonical(email, %q) = %q, %v; want it unchanged (idempotence)", c, again, err)
		}
		without := strings.NewReplacer(zwnj, "", zwj, "").Replace(v)
		if w, err := Canonical(Email, without, Options{}); err != nil || w == c {
			t.Errorf("Canonical(email, %q) = %q, %v; want a valid address other than %q", without, w, err, c)
		}
	}
	for _, v := range []string{
		"a@ab" + zwnj + "cd.com", // between Latin letters: no joining
		"a@ab" + zwj + "cd.com",  // not after a virama
		"ab" + zwnj + "cd@example.com",
		"ab" + zwj + "cd@example.com",
		"a@" + zwnj + "خواهم.ir", // at the start of a label
	} {
		c, err := Canonical(Email, v, Options{})
		var e *Error
		if !errors.Is(err, ErrSyntax) || !errors.As(err, &e) || !strings.Contains(e.Detail, "joiner") {
			t.Errorf("Canonical(email, %q) = %q, %v; want ErrSyntax naming the joiner", v, c, err)
		}
	}
}

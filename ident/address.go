package ident

import (
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// streetWords maps the spellings of common street types, directions and
// unit words to one abbreviation each. Every abbreviation maps to itself or
// is absent, so the mapping is idempotent. English "St" stands for both
// street and saint; both become "st", which keeps "St Mary's Rd" and
// "Saint Mary's Road" together. German "Straße" (after case folding
// "strasse") becomes "str", also at the end of a compound word
// (Hauptstraße, Hauptstr.).
var streetWords = map[string]string{
	"street": "st", "st": "st", "saint": "st",
	"strasse": "str", "str": "str",
	"road": "rd", "rd": "rd",
	"avenue": "ave", "ave": "ave", "av": "ave", "avenida": "ave", "avda": "ave",
	"boulevard": "blvd", "blvd": "blvd", "boul": "blvd", "bd": "blvd",
	"drive": "dr", "dr": "dr",
	"lane": "ln", "ln": "ln",
	"court": "ct", "ct": "ct",
	"place": "pl", "pl": "pl",
	"square": "sq", "sq": "sq",
	"terrace": "ter", "terr": "ter", "ter": "ter",
	"crescent": "cres", "cres": "cres",
	"close": "cl", "cl": "cl",
	"gardens": "gdns", "gdns": "gdns",
	"highway": "hwy", "hwy": "hwy",
	"parkway": "pkwy", "pkwy": "pkwy",
	"circle": "cir", "cir": "cir",
	"mount": "mt", "mt": "mt",
	"apartment": "apt", "apt": "apt",
	"suite": "ste", "ste": "ste",
	"floor": "fl", "fl": "fl",
	"building": "bldg", "bldg": "bldg",
	"north": "n", "south": "s", "east": "e", "west": "w",
	"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
}

var fold = cases.Fold()

// address returns the rule-based canonical form of a postal address: the
// text NFKC-normalised, case-folded (ß becomes ss), with accents removed,
// apostrophes dropped, every other character that is not a letter, digit or
// mark
// turned into a space, words abbreviated by streetWords, single spaces;
// then "|CC" when the country is known. The country is the ISO 3166 code
// after a final "|" in the value (as in a canonical form), else region.
func address(v, region string) (string, error) {
	cc := region
	if i := strings.LastIndexByte(v, '|'); i >= 0 {
		if c := strings.ToUpper(strings.TrimSpace(v[i+1:])); isCountry(c) {
			cc, v = c, v[:i]
		}
	}
	var words []string
	for _, w := range strings.FieldsFunc(foldText(v), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	}) {
		if a, ok := streetWords[w]; ok {
			w = a
		} else if stem, ok := strings.CutSuffix(w, "strasse"); ok {
			w = stem + "str"
		}
		words = append(words, w)
	}
	if len(words) == 0 {
		return "", fail(Address, ErrSyntax, "no letters or digits")
	}
	c := strings.Join(words, " ")
	if cc != "" {
		c += "|" + cc
	}
	return c, nil
}

// foldText case-folds s, strips the accents of Latin, Greek and Cyrillic
// letters, drops apostrophes and
// normalises it to NFKC, repeating until nothing changes (a few Unicode
// characters need a second round), so that the result is a fixed point.
func foldText(s string) string {
	for range 4 {
		t := fold.String(s)
		t = norm.NFKD.String(t)
		t = stripAccents(t)
		t = norm.NFKC.String(t)
		if t == s {
			break
		}
		s = t
	}
	return s
}

// stripAccents drops, from the NFKD string s, apostrophes and the combining
// marks that follow a Latin, Greek or Cyrillic letter (é becomes e). Marks
// of other scripts stay: Thai or Devanagari vowel signs are letters of
// their words, not accents.
func stripAccents(s string) string {
	var b strings.Builder
	accented := false
	for _, r := range s {
		switch {
		case r == '\'' || r == '\u2019' || r == '\u02bc' || r == '`':
			continue
		case unicode.Is(unicode.Mn, r):
			if accented {
				continue
			}
		default:
			accented = unicode.In(r, unicode.Latin, unicode.Greek, unicode.Cyrillic)
		}
		b.WriteRune(r)
	}
	return b.String()
}

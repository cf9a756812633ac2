package testnet

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/chaincfg"
	"golang.org/x/crypto/sha3"

	"github.com/xborder/xborder/ident"
)

// Roles of generated identifiers: every identifier encodes its role, its
// generating agency and a serial number, so identifiers of different roles
// or agencies never coincide and the ground truth is exact by construction.
const (
	roleHolding = 0
	rolePlanted = 8
	roleDecoy   = 9
)

// gen makes identifiers deterministically from a seed.
type gen struct {
	seed uint64
	rng  *rand.Rand
}

func newGen(seed uint64, stream uint64) *gen {
	return &gen{seed: seed, rng: rand.New(rand.NewPCG(seed, stream))}
}

// scramble maps serial s < 10^digits to another number below 10^digits,
// bijectively, so consecutive serials do not look consecutive.
func scramble(s uint64, digits int) uint64 {
	m := uint64(1)
	for range digits {
		m *= 10
	}
	return (s%m*387577 + 104729) % m
}

func digits(v uint64, n int) string { return fmt.Sprintf("%0*d", n, v) }

// made is one generated identifier: its canonical form, and its spelling
// by a writer (an agency code) in a variant (a row number; negative: a
// spelling no holder uses).
type made struct {
	canonical string
	spell     func(writer string, variant int) string
}

// phonePlan gives, per country, a national prefix and its country code:
// prefix + 7 free digits is a valid mobile number.
var phonePlan = map[string]struct{ cc, national string }{
	"GB": {"44", "0740"},
	"TH": {"66", "081"},
	"DE": {"49", "01512"},
	"NL": {"31", "061"},
	"FR": {"33", "061"},
}

func agencyIndex(code string) int {
	for i, a := range Agencies {
		if a.Code == code {
			return i
		}
	}
	return 0
}

func (g *gen) phone(country string, role int, serial uint64) made {
	p := phonePlan[country]
	free := fmt.Sprint(role) + digits(scramble(serial, 6), 6)
	if role == roleHolding {
		free = fmt.Sprint(serial/1000000%8) + digits(scramble(serial, 6), 6)
	}
	national := p.national + free // trunk 0 + NSN
	nsn := national[1:]
	canonical := "+" + p.cc + nsn
	return made{canonical: canonical, spell: func(writer string, variant int) string {
		if variant < 0 { // another spelling than any holder's
			return "+" + p.cc + " " + spaced(nsn, 2)
		}
		if writer != country {
			return "+" + p.cc + " " + nsn[:len(nsn)-6] + " " + nsn[len(nsn)-6:]
		}
		switch country {
		case "GB":
			return []string{national[:5] + " " + national[5:], national, "+44 " + nsn[:4] + " " + nsn[4:]}[variant%3]
		case "TH":
			return []string{national[:3] + "-" + national[3:6] + "-" + national[6:], national, "+66 " + nsn[:2] + " " + nsn[2:5] + " " + nsn[5:]}[variant%3]
		case "DE":
			return []string{national[:4] + " " + national[4:8] + " " + national[8:], national[:5] + "/" + national[5:], "+49 " + nsn[:3] + " " + nsn[3:]}[variant%3]
		case "NL":
			return []string{national[:2] + "-" + national[2:], national[:2] + " " + national[2:6] + " " + national[6:], "+31 " + nsn[:1] + " " + nsn[1:]}[variant%3]
		default: // FR
			return []string{spaced(national, 2), strings.ReplaceAll(spaced(national, 2), " ", "."), "+33 " + nsn[:1] + " " + spaced(nsn[1:], 2)}[variant%3]
		}
	}}
}

// spaced writes s in groups of n separated by spaces.
func spaced(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s); i += n {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+n, len(s))])
	}
	return b.String()
}

var (
	firstNames = []string{"anna", "ben", "chai", "dara", "elif", "femi", "greta", "hugo", "ines", "jan", "kamal", "lena", "malee", "niels", "olga", "pierre", "quinn", "rosa", "somchai", "tariq", "ursula", "vik", "wanida", "xavier", "yuki", "zofia"}
	lastNames  = []string{"smith", "meyer", "jansen", "dubois", "srisuk", "khan", "novak", "rossi", "bakker", "martin", "wong", "schulz", "de vries", "bernard", "chaiyo", "o'neil"}
	mailHosts  = map[string][]string{
		"GB": {"mail.example.co.uk", "post.example"},
		"TH": {"mail.example.co.th", "inbox.example"},
		"DE": {"post.example.de", "müller-mail.example"},
		"NL": {"mail.example.nl", "post.example"},
		"FR": {"courriel.example.fr", "boîte.example"},
	}
)

func (g *gen) email(country string, role int, agency int, serial uint64) made {
	h := g.hash("email", country, role, agency, serial)
	first := firstNames[h[0]%byte(len(firstNames))]
	last := strings.NewReplacer(" ", "", "'", "").Replace(lastNames[h[1]%byte(len(lastNames))])
	hosts := mailHosts[country]
	host := hosts[int(h[2])%len(hosts)]
	tag := map[int]string{roleHolding: "h", rolePlanted: "p", roleDecoy: "d"}[role] + fmt.Sprint(agency)
	local := fmt.Sprintf("%s.%s.%s%d", first, last, tag, serial)
	canonHost := host
	if a, err := ident.Canonical(ident.Email, "x@"+host, ident.Options{}); err == nil {
		canonHost = a[strings.IndexByte(a, '@')+1:]
	}
	return made{canonical: local + "@" + canonHost, spell: func(writer string, variant int) string {
		if variant < 0 {
			return strings.ToUpper(local) + "@" + strings.ToUpper(host)
		}
		if variant%2 == 1 {
			return "  " + title(first) + "." + title(last) + "." + tag + fmt.Sprint(serial) + "@" + host
		}
		return local + "@" + host
	}}
}

func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// hash returns 32 bytes that depend on every argument: the source of
// wallet hashes and of choices that must be the same for every holder.
func (g *gen) hash(kind, country string, role, agency int, serial uint64) [32]byte {
	var b []byte
	b = binary.BigEndian.AppendUint64(b, g.seed)
	b = append(b, kind...)
	b = append(b, '|')
	b = append(b, country...)
	b = append(b, byte(role), byte(agency))
	b = binary.BigEndian.AppendUint64(b, serial)
	return sha256.Sum256(b)
}

func (g *gen) btc(role, agency int, serial uint64) made {
	h := g.hash("btc", "", role, agency, serial)
	var addr string
	if serial%2 == 0 {
		a, err := btcutil.NewAddressPubKeyHash(h[:20], &chaincfg.MainNetParams)
		if err != nil {
			panic(err) // a 20-byte hash is always accepted
		}
		addr = a.EncodeAddress()
	} else {
		a, err := btcutil.NewAddressWitnessPubKeyHash(h[:20], &chaincfg.MainNetParams)
		if err != nil {
			panic(err)
		}
		addr = a.EncodeAddress()
	}
	return made{canonical: addr, spell: func(_ string, variant int) string {
		if variant < 0 && strings.HasPrefix(addr, "bc1") {
			return strings.ToUpper(addr)
		}
		if variant < 0 {
			return " " + addr + " "
		}
		return addr
	}}
}

// eip55 returns the EIP-55 mixed-case spelling of a 20-byte address.
func eip55(a []byte) string {
	lower := hex.EncodeToString(a)
	k := sha3.NewLegacyKeccak256()
	k.Write([]byte(lower))
	d := k.Sum(nil)
	out := []byte(lower)
	for i, c := range out {
		if c >= 'a' && c <= 'f' {
			nib := d[i/2]
			if i%2 == 0 {
				nib >>= 4
			}
			if nib&0xf >= 8 {
				out[i] = c - 'a' + 'A'
			}
		}
	}
	return "0x" + string(out)
}

func (g *gen) eth(role, agency int, serial uint64) made {
	h := g.hash("eth", "", role, agency, serial)
	mixed := eip55(h[:20])
	lower := strings.ToLower(mixed)
	return made{canonical: lower, spell: func(_ string, variant int) string {
		if variant < 0 {
			return lower
		}
		return mixed
	}}
}

// ibanCountry is the country of the IBANs an agency generates (Thailand
// has no IBAN: its agency holds accounts in the United Kingdom).
func ibanCountry(country string) string {
	if country == "TH" {
		return "GB"
	}
	return country
}

// ibanCheck returns the two mod-97 check digits of country and bban.
func ibanCheck(country, bban string) string {
	var num strings.Builder
	for _, r := range bban + country + "00" {
		if r >= 'A' && r <= 'Z' {
			num.WriteString(fmt.Sprint(int(r-'A') + 10))
		} else {
			num.WriteRune(r)
		}
	}
	n, _ := new(big.Int).SetString(num.String(), 10)
	m := new(big.Int).Mod(n, big.NewInt(97)).Int64()
	return fmt.Sprintf("%02d", 98-m)
}

func (g *gen) iban(country string, role, agency int, serial uint64) made {
	cc := ibanCountry(country)
	payload := fmt.Sprint(role) + fmt.Sprint(agency) + digits(scramble(serial, 8), 8) // 10 digits, unique per (role, agency, serial)
	var bban string
	switch cc {
	case "GB":
		bban = "XBRD" + "4000" + payload
	case "DE":
		bban = "37040044" + payload
	case "NL":
		bban = "XBRD" + payload
	default: // FR: bank, branch, account (11), key (2)
		bban = "30006" + "00001" + "0" + payload + "00"
	}
	iban := cc + ibanCheck(cc, bban) + bban
	return made{canonical: iban, spell: func(_ string, variant int) string {
		if variant < 0 {
			return strings.ToLower(iban)
		}
		if variant%2 == 0 {
			return spaced(iban, 4)
		}
		return iban
	}}
}

var (
	streetsHolding = []string{"Oak", "Elm", "Birch", "Cedar", "Maple", "Willow", "Ash", "Rowan"}
	streetsPlanted = []string{"Harbour", "Quay", "Canal", "Dock"}
	streetsDecoy   = []string{"Quarry", "Orchard", "Meadow", "Heath"}
	cities         = map[string][]string{
		"GB": {"London", "Leeds", "Bristol"},
		"TH": {"Bangkok", "Chiang Mai", "Pattaya"},
		"DE": {"Berlin", "Hamburg", "Köln"},
		"NL": {"Amsterdam", "Rotterdam", "Utrecht"},
		"FR": {"Paris", "Lyon", "Marseille"},
	}
)

func (g *gen) address(country string, role, agency int, serial uint64) made {
	streets := map[int][]string{roleHolding: streetsHolding, rolePlanted: streetsPlanted, roleDecoy: streetsDecoy}[role]
	flat := serial%1000 + 1
	number := serial/1000%1000 + 1
	street := streets[serial/1000000%uint64(len(streets))]
	if role == roleHolding {
		street += " " + []string{"Hill", "Park", "Green", "Vale", "Field"}[agency]
	}
	city := cities[country][serial%3]
	var long, short string
	switch country {
	case "GB":
		long = fmt.Sprintf("Flat %d, %d %s Street, %s", flat, number, street, city)
		short = fmt.Sprintf("flat %d %d %s st. %s", flat, number, strings.ToLower(street), strings.ToUpper(city))
	case "DE":
		long = fmt.Sprintf("%s Straße %d, Wohnung %d, %s", street, number, flat, city)
		short = fmt.Sprintf("%s str. %d wohnung %d %s", strings.ToLower(street), number, flat, city)
	case "NL":
		long = fmt.Sprintf("%s Avenue %d, appartement %d, %s", street, number, flat, city)
		short = fmt.Sprintf("%s ave %d appartement %d %s", strings.ToUpper(street), number, flat, city)
	case "FR":
		long = fmt.Sprintf("%d Boulevard %s, appartement %d, %s", number, street, flat, city)
		short = fmt.Sprintf("%d bd %s appartement %d %s", number, street, flat, strings.ToUpper(city))
	default: // TH
		long = fmt.Sprintf("%d/%d %s Road, %s", number, flat, street, city)
		short = fmt.Sprintf("%d/%d %s rd %s", number, flat, strings.ToLower(street), city)
	}
	canonical, err := ident.Canonical(ident.Address, long, ident.Options{Region: country})
	if err != nil {
		panic(fmt.Sprintf("testnet: generated address does not canonicalise: %v", err))
	}
	return made{canonical: canonical, spell: func(writer string, variant int) string {
		s := long
		if variant < 0 || variant%2 == 1 {
			s = short
		}
		if writer != country || variant < 0 {
			s += "|" + country
		}
		return s
	}}
}

func (g *gen) document(country string, role, agency int, serial uint64) made {
	num := string(rune('A'+role)) + fmt.Sprint(agency) + digits(scramble(serial, 7), 7)
	return made{canonical: country + ":" + num, spell: func(writer string, variant int) string {
		if variant < 0 {
			return strings.ToLower(country) + ":" + num[:3] + "-" + num[3:6] + "-" + num[6:]
		}
		if writer != country {
			return country + ":" + num
		}
		if variant%2 == 1 {
			return num[:4] + " " + num[4:]
		}
		return num
	}}
}

// make returns the identifier of kind, role and serial generated by (or,
// for planted and decoy identifiers, in the country of) agency.
func (g *gen) make(kind, country string, role int, serial uint64) made {
	a := agencyIndex(country)
	switch kind {
	case "phone":
		return g.phone(country, role, serial)
	case "email":
		return g.email(country, role, a, serial)
	case "btc":
		return g.btc(role, a, serial)
	case "eth":
		return g.eth(role, a, serial)
	case "iban":
		return g.iban(country, role, a, serial)
	case "address":
		return g.address(country, role, a, serial)
	default:
		return g.document(country, role, a, serial)
	}
}

package ident

import (
	"strings"
	"testing"
)

func TestEmail(t *testing.T) {
	const alice = "alice.smith@example.com"
	runCanon(t, Email, []canonCase{
		{value: "alice.smith@example.com", want: alice},
		{value: "Alice.Smith@Example.COM", want: alice},
		{value: "  ALICE.SMITH@EXAMPLE.COM\r\n", want: alice},
		{value: "alice.smith@example.com.", want: alice},
		{value: "ａｌｉｃｅ.ｓｍｉｔｈ＠ｅｘａｍｐｌｅ.ｃｏｍ", want: alice},
		{value: "alice.smith\u200b@example.com", want: alice},
		{value: "bob+tag@münchen.de", want: "bob+tag@xn--mnchen-3ya.de"},
		{value: "BOB+TAG@MÜNCHEN.DE", want: "bob+tag@xn--mnchen-3ya.de"},
		{value: "bob+tag@xn--mnchen-3ya.de", want: "bob+tag@xn--mnchen-3ya.de"},
		{value: "bob+tag@XN--MNCHEN-3YA.DE", want: "bob+tag@xn--mnchen-3ya.de"},
		{value: "sómchai@ตัวอย่าง.ไทย", want: "sómchai@xn--72c1a1bt4awk9o.xn--o3cw4h"},
		{value: "o'brien_{x}@mail.example.co.uk", want: "o'brien_{x}@mail.example.co.uk"},
		{value: "", err: ErrEmpty},
		{value: "alice.example.com", err: ErrSyntax},
		{value: "@example.com", err: ErrSyntax},
		{value: "alice@", err: ErrSyntax},
		{value: "alice smith@example.com", err: ErrSyntax},
		{value: "alice..smith@example.com", err: ErrSyntax},
		{value: ".alice@example.com", err: ErrSyntax},
		{value: `"alice"@example.com`, err: ErrSyntax},
		{value: "alice@localhost", err: ErrSyntax},
		{value: "alice@192.168.0.1", err: ErrSyntax},
		{value: "alice@[192.168.0.1]", err: ErrSyntax},
		{value: "alice@exa mple.com", err: ErrSyntax},
		{value: "alice@-example.com", err: ErrSyntax},
		{value: strings.Repeat("a", 65) + "@example.com", err: ErrTooLong},
		{value: strings.Repeat("a", 64) + "@" + strings.Repeat(strings.Repeat("b", 62)+".", 3) + "com", err: ErrTooLong},
		{value: "a@" + strings.Repeat("b", 64) + ".com", err: ErrSyntax}, // label over 63
	})
	mustDiffer(t, Email, [][2]canonCase{
		{{value: "alice.smith@example.com"}, {value: "alicesmith@example.com"}},
		{{value: "alice+x@example.com"}, {value: "alice@example.com"}},
		{{value: "alice@example.com"}, {value: "alice@example.co"}},
	})
}

func TestBTC(t *testing.T) {
	const (
		p2pkh  = "1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX"
		p2sh   = "3QJmV3qfvL9SuYo34YihAf3sRCW3qSinyC"
		p2wpkh = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
		p2wsh  = "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3"
		p2tr   = "bc1paardr2nczq0rx5rqpfwnvpzm497zvux64y0f7wjgcs7xuuuh2nnqwr2d5c"
	)
	runCanon(t, BTC, []canonCase{
		{value: p2pkh, want: p2pkh},
		{value: "  " + p2pkh + "\t", want: p2pkh},
		{value: "１MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX", want: p2pkh},
		{value: p2sh, want: p2sh},
		{value: p2wpkh, want: p2wpkh},
		{value: strings.ToUpper(p2wpkh), want: p2wpkh},
		{value: p2wsh, want: p2wsh},
		{value: strings.ToUpper(p2wsh), want: p2wsh},
		{value: p2tr, want: p2tr},
		{value: strings.ToUpper(p2tr), want: p2tr},
		{value: "", err: ErrEmpty},
		{value: "1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gY", err: ErrChecksum},
		{value: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", err: ErrChecksum},
		{value: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", err: ErrChecksum},                     // v0 in bech32m
		{value: "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", err: ErrChecksum}, // v1 in bech32
		{value: "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7KV8F3T4", err: ErrSyntax},                       // mixed case
		{value: "1mirq9bwyqcgvjpwkugapu5ouk2e2ey4gx", err: ErrChecksum},                             // base58 is case-sensitive
		{value: "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", err: ErrSyntax},                       // testnet
		{value: "mrX9vMRYLfVy1BnZbc5gZjuyaqH3ZW2ZHz", err: ErrSyntax},                               // testnet
		{value: "BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", err: ErrSyntax},   // witness v17
		{value: "02192d74d0cb94344c9569c2e77901573d8d7903c3ebec3a957724895dca52c6b4", err: ErrSyntax},
		{value: "1MirQ9bwyQcGVJPw KUgapu5ouK2E2Ey4gX", err: ErrSyntax},
		{value: "0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb", err: ErrSyntax},
		{value: strings.Repeat("1", 300), err: ErrTooLong},
	})
	mustDiffer(t, BTC, [][2]canonCase{
		{{value: p2pkh}, {value: "12MzCDwodF9G1e7jfwLXfR164RNtx4BRVG"}},
		{{value: p2wpkh}, {value: p2wsh}},
	})
}

func TestETH(t *testing.T) {
	const a = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
	runCanon(t, ETH, []canonCase{
		{value: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", want: a},
		{value: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", want: a},
		{value: "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", want: a},
		{value: "0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", want: a},
		{value: "5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", want: a},
		{value: "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", want: a},
		{value: " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\r", want: a},
		{value: "０ｘ５ａａｅｂ6053f3e94c9b9a09f33669435e7ef1beaed", want: a},
		{value: "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359", want: "0xfb6916095ca1df60bb79ce92ce3ea74c37c5d359"},
		{value: "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB", want: "0xdbf03b407c01e7cd3cbea99509d93f8dddc8c6fb"},
		{value: "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb", want: "0xd1220a0cf47c7b9be7a2e6ba89f429762e7b9adb"},
		{value: "", err: ErrEmpty},
		{value: "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", err: ErrChecksum},
		{value: "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", err: ErrChecksum},
		{value: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beae", err: ErrSyntax},
		{value: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaedd", err: ErrSyntax},
		{value: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg", err: ErrSyntax},
		{value: "0x 5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", err: ErrSyntax},
		{value: "1MirQ9bwyQcGVJPwKUgapu5ouK2E2Ey4gX", err: ErrSyntax},
		{value: strings.Repeat("f", 300), err: ErrTooLong},
	})
	mustDiffer(t, ETH, [][2]canonCase{
		{{value: a}, {value: "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaee"}},
	})
}

func TestIBAN(t *testing.T) {
	const gb = "GB82WEST12345698765432"
	runCanon(t, IBAN, []canonCase{
		{value: "GB82 WEST 1234 5698 7654 32", want: gb},
		{value: "GB82WEST12345698765432", want: gb},
		{value: "gb82 west 1234 5698 7654 32", want: gb},
		{value: "GB82-WEST-1234-5698-7654-32", want: gb},
		{value: "IBAN GB82 WEST 1234 5698 7654 32", want: gb},
		{value: "ＧＢ８２ ＷＥＳＴ １２３４ ５６９８ ７６５４ ３２", want: gb},
		{value: "  GB82\u00a0WEST 1234 5698 7654 32 ", want: gb},
		{value: "DE89 3704 0044 0532 0130 00", want: "DE89370400440532013000"},
		{value: "FR14 2004 1010 0505 0001 3M02 606", want: "FR1420041010050500013M02606"},
		{value: "NL91 ABNA 0417 1643 00", want: "NL91ABNA0417164300"},
		{value: "be68 5390 0754 7034", want: "BE68539007547034"},
		{value: "NO93 8601 1117 947", want: "NO9386011117947"},
		{value: "CH93 0076 2011 6238 5295 7", want: "CH9300762011623852957"},
		{value: "", err: ErrEmpty},
		{value: "GB82 WEST 1234 5698 7654 33", err: ErrChecksum},
		{value: "GB28 WEST 1234 5698 7654 32", err: ErrChecksum},
		{value: "DE89 3704 0044 0532 0130 0", err: ErrSyntax},   // too short for DE
		{value: "GB82 WEST 1234 5698 7654 321", err: ErrSyntax}, // too long for GB
		{value: "ZZ82 WEST 1234 5698 7654 32", err: ErrSyntax},
		{value: "GBXX WEST 1234 5698 7654 32", err: ErrSyntax},
		{value: "GB82 WEST 1234 5698 7654 3_", err: ErrSyntax},
		{value: "GB82 WÉST 1234 5698 7654 32", err: ErrSyntax},
		{value: "US12", err: ErrSyntax},
		{value: strings.Repeat("9", 300), err: ErrTooLong},
	})
	mustDiffer(t, IBAN, [][2]canonCase{
		{{value: gb}, {value: "DE89370400440532013000"}},
	})
}

func TestAddress(t *testing.T) {
	const downing = "10 downing st|GB"
	runCanon(t, Address, []canonCase{
		{value: "10 Downing Street", region: "GB", want: downing},
		{value: "10 DOWNING ST.", region: "GB", want: downing},
		{value: "10, Downing  Street", region: "gb", want: downing},
		{value: "１０ Ｄｏｗｎｉｎｇ Ｓｔｒｅｅｔ", region: "GB", want: downing},
		{value: "10 Downing Street|GB", want: downing},
		{value: "10 Downing Street | gb", region: "FR", want: downing},
		{value: downing, want: downing},
		{value: "Hauptstraße 5", region: "DE", want: "hauptstr 5|DE"},
		{value: "HAUPTSTRASSE 5", region: "DE", want: "hauptstr 5|DE"},
		{value: "Hauptstr. 5", region: "DE", want: "hauptstr 5|DE"},
		{value: "Große Straße 1", region: "DE", want: "grosse str 1|DE"},
		{value: "12 Rue de l'Église", region: "FR", want: "12 rue de leglise|FR"},
		{value: "12 rue de l’eglise", region: "FR", want: "12 rue de leglise|FR"},
		{value: "12 RUE DE L'ÉGLISE", region: "FR", want: "12 rue de leglise|FR"},
		{value: "St. Mary's Rd, Apt. 4", region: "GB", want: "st marys rd apt 4|GB"},
		{value: "Saint Marys Road Apartment 4", region: "GB", want: "st marys rd apt 4|GB"},
		{value: "1600 Pennsylvania Avenue North-West", region: "US", want: "1600 pennsylvania ave n w|US"},
		{value: "99/1 ถนนสุขุมวิท", region: "TH", want: "99 1 ถนนสุขุมวิท|TH"},
		{value: "10 Downing Street", want: "10 downing st"},
		{value: "Οδός Ερμού 12", region: "GR", want: "οδοσ ερμου 12|GR"}, // case folding maps final ς to σ
		{value: "ΟΔΟΣ ΕΡΜΟΥ 12", region: "GR", want: "οδοσ ερμου 12|GR"},
		{value: "ул. Тверская, д. 7", region: "RU", want: "ул тверская д 7|RU"},
		{value: "", err: ErrEmpty},
		{value: " ,.;- ", region: "GB", err: ErrSyntax},
		{value: "|GB", err: ErrSyntax},
		{value: "10 Downing Street", region: "XX", err: ErrRegion},
		{value: strings.Repeat("a", MaxLen+1), err: ErrTooLong},
		{value: "10 Downing\xffStreet", err: ErrSyntax},
	})
	mustDiffer(t, Address, [][2]canonCase{
		{{value: "10 Downing Street", region: "GB"}, {value: "10 Downing Street", region: "US"}},
		{{value: "10 Downing Street", region: "GB"}, {value: "10 Downing Street"}},
		{{value: "10 Downing Street", region: "GB"}, {value: "11 Downing Street", region: "GB"}},
		{{value: "10 Downing Street", region: "GB"}, {value: "10 Downing Road", region: "GB"}},
	})
}

func TestStreetWordsIdempotent(t *testing.T) {
	for from, to := range streetWords {
		if again, ok := streetWords[to]; ok && again != to {
			t.Errorf("streetWords[%q] = %q, but streetWords[%q] = %q; want abbreviations to map to themselves", from, to, to, again)
		}
		if strings.HasSuffix(to, "strasse") {
			t.Errorf("streetWords[%q] = %q ends in strasse", from, to)
		}
	}
}

func TestDocument(t *testing.T) {
	const gb = "GB:123456789"
	runCanon(t, Document, []canonCase{
		{value: "GB:123456789", want: gb},
		{value: "gb:123456789", want: gb},
		{value: "GB: 123 456 789", want: gb},
		{value: "GB : 123-456-789", want: gb},
		{value: "123456789", region: "GB", want: gb},
		{value: "123.456.789", region: "gb", want: gb},
		{value: "GB:123456789", region: "FR", want: gb},
		{value: "ＧＢ：１２３４５６７８９", want: gb},
		{value: "DE:c01x00t47", want: "DE:C01X00T47"},
		{value: "c01x00t47", region: "DE", want: "DE:C01X00T47"},
		{value: "C01X-00T4/7", region: "DE", want: "DE:C01X00T47"},
		{value: "TH:1-1037-02071-81-1", want: "TH:1103702071811"},
		{value: "", err: ErrEmpty},
		{value: "123456789", err: ErrRegion},
		{value: "UK:123456789", err: ErrRegion},
		{value: "GBR:123456789", err: ErrRegion},
		{value: "GB:", err: ErrSyntax},
		{value: "GB:12345#678", err: ErrSyntax},
		{value: "GB:12:34", err: ErrSyntax},
		{value: "GB:ÄB123", err: ErrSyntax},
		{value: "GB:" + strings.Repeat("1", 41), err: ErrTooLong},
	})
	mustDiffer(t, Document, [][2]canonCase{
		{{value: "123456789", region: "GB"}, {value: "123456789", region: "IE"}},
		{{value: "GB:O12345"}, {value: "GB:012345"}},
	})
}

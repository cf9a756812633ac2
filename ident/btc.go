package ident

import (
	"errors"
	"strings"

	"github.com/btcsuite/btcd/btcutil"
	"github.com/btcsuite/btcd/btcutil/base58"
	"github.com/btcsuite/btcd/btcutil/bech32"
	"github.com/btcsuite/btcd/chaincfg"
)

// btc returns a bitcoin mainnet address as it encodes itself: base58check
// for P2PKH (1...) and P2SH (3...), lower-case bech32 for segwit v0
// (bc1q...) and bech32m for taproot (bc1p...), after verifying its
// checksum. Bech32 is case-insensitive but must not mix case (BIP 173);
// base58 is case-sensitive. Raw public keys, testnet and other networks'
// addresses are refused.
func btc(v string) (string, error) {
	if hasSpaceOrControl(v) {
		return "", fail(BTC, ErrSyntax, "not a bitcoin address (contains spaces)")
	}
	bech := len(v) > 3 && strings.EqualFold(v[:3], "bc1")
	if bech && v != strings.ToLower(v) && v != strings.ToUpper(v) {
		return "", fail(BTC, ErrSyntax, "bech32 address mixes upper and lower case")
	}
	if !bech && (len(v) < 26 || len(v) > 35) {
		// Also keeps the 66- and 130-digit hex public keys, which
		// DecodeAddress would take, out.
		return "", fail(BTC, ErrSyntax, "not a bitcoin address (wrong length)")
	}
	addr, err := btcutil.DecodeAddress(v, &chaincfg.MainNetParams)
	if err != nil {
		return "", btcDecodeError(err)
	}
	if _, ok := addr.(*btcutil.AddressPubKey); ok || !addr.IsForNet(&chaincfg.MainNetParams) {
		return "", fail(BTC, ErrSyntax, "not a bitcoin mainnet address")
	}
	return addr.EncodeAddress(), nil
}

// btcDecodeError maps the errors of btcutil.DecodeAddress to this package's.
func btcDecodeError(err error) error {
	var bechSum bech32.ErrInvalidChecksum
	switch {
	case errors.Is(err, btcutil.ErrChecksumMismatch), errors.Is(err, base58.ErrChecksum):
		return fail(BTC, ErrChecksum, "wrong checksum (base58check)")
	case errors.As(err, &bechSum):
		return fail(BTC, ErrChecksum, "wrong checksum (bech32)")
	case strings.Contains(err.Error(), "invalid checksum expected bech32"):
		// DecodeAddress reports a v0 address in bech32m, or a v1 address
		// in bech32, with a plain error.
		return fail(BTC, ErrChecksum, "wrong checksum (bech32 and bech32m mixed up for the witness version)")
	case errors.Is(err, btcutil.ErrUnknownAddressType):
		return fail(BTC, ErrSyntax, "not a bitcoin mainnet address")
	}
	return fail(BTC, ErrSyntax, "not a bitcoin address")
}

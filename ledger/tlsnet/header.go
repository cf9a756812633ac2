package tlsnet

import (
	"errors"
	"fmt"
	"io"
)

// The channel header is the first thing a dialer writes after the TLS
// handshake:
//
//	"xbt1" | len (1 byte, 1..64) | channel name (len bytes of [a-z0-9/._-])
//
// The listener answers with one status byte (statusOK, statusUnknown or statusRefused)
// before either side sends anything else, so a dial to a channel nobody
// serves fails at Dial rather than on the first RPC.
const (
	headerMagic    = "xbt1"
	maxChannelName = 64

	statusOK      byte = 0
	statusUnknown byte = 1
	statusRefused byte = 2 // the layer's admission check refused the peer (Layer.SetAdmit)
)

var errBadHeader = errors.New("bad channel header")

// validChannel reports whether name can be carried in a channel header.
func validChannel(name string) bool {
	if len(name) == 0 || len(name) > maxChannelName {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '/', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// appendHeader appends the channel header for name to b.
func appendHeader(b []byte, name string) ([]byte, error) {
	if !validChannel(name) {
		return b, fmt.Errorf("encode channel header %q: %w", name, errBadHeader)
	}
	b = append(b, headerMagic...)
	b = append(b, byte(len(name)))
	return append(b, name...), nil
}

// parseHeader decodes a channel header at the start of b and returns the
// channel name and the number of bytes it took. It returns
// io.ErrUnexpectedEOF when b holds only a valid prefix of a header.
func parseHeader(b []byte) (name string, n int, err error) {
	const fixed = len(headerMagic) + 1
	m := min(len(b), len(headerMagic))
	if string(b[:m]) != headerMagic[:m] {
		return "", 0, fmt.Errorf("decode channel header: %w: wrong magic", errBadHeader)
	}
	if len(b) < fixed {
		return "", 0, io.ErrUnexpectedEOF
	}
	l := int(b[len(headerMagic)])
	if l == 0 || l > maxChannelName {
		return "", 0, fmt.Errorf("decode channel header: %w: name length %d", errBadHeader, l)
	}
	if len(b) < fixed+l {
		return "", 0, io.ErrUnexpectedEOF
	}
	name = string(b[fixed : fixed+l])
	if !validChannel(name) {
		return "", 0, fmt.Errorf("decode channel header: %w: bad name", errBadHeader)
	}
	return name, fixed + l, nil
}

// readHeader reads one channel header from r, never more bytes than the
// header has.
func readHeader(r io.Reader) (string, error) {
	var buf [len(headerMagic) + 1 + maxChannelName]byte
	fixed := len(headerMagic) + 1
	if _, err := io.ReadFull(r, buf[:fixed]); err != nil {
		return "", fmt.Errorf("read channel header: %w", err)
	}
	if _, _, err := parseHeader(buf[:fixed]); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	l := int(buf[len(headerMagic)])
	if _, err := io.ReadFull(r, buf[fixed:fixed+l]); err != nil {
		return "", fmt.Errorf("read channel header: %w", err)
	}
	name, _, err := parseHeader(buf[:fixed+l])
	return name, err
}

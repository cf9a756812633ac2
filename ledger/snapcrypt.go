package ledger

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// Snapshots at rest. With Config.EncryptionKey set, the bytes snapStore
// writes to a Raft snapshot's state.bin, whether the snapshot is taken
// here or received from the leader (install), are the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár 2015; the one age uses) over
// AES-256-GCM:
//
//	header  snapMagic || salt (32 random bytes, fresh per snapshot)
//	key     HKDF-SHA256(storage key, salt, snapInfo || snapshot ID), 32 bytes
//	chunks  AES-256-GCM(key, nonce = 11-byte big-endian counter || final flag, plaintext)
//
// Every chunk holds snapChunk bytes of plaintext but the last, which may
// be shorter or empty and is sealed with the final flag: a truncated,
// extended or reordered stream does not open. Binding the snapshot ID
// into the key makes a state.bin moved to another snapshot not open
// either. Reading returns only authenticated bytes, and Open
// authenticates the whole stream before Raft restores anything from it.
// The Raft transport between replicas (TLS) carries the plaintext state.
const (
	snapMagic = "xborder-snap-v1\n"
	snapInfo  = "xborder ledger snapshot v1 "
	snapSalt  = 32
	snapChunk = 64 << 10
	snapTag   = 16
)

// errSnapshotAuth is the cause when a snapshot does not decrypt.
var errSnapshotAuth = errors.New("snapshot does not decrypt: wrong storage key (Config.EncryptionKey), or the file was altered or cut short")

// snapAEAD derives the AEAD of snapshot id from the storage key and salt.
func snapAEAD(key, salt []byte, id string) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, key, salt, snapInfo+id, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// snapNonce is the nonce of chunk i: the counter, then the final flag.
func snapNonce(nonce []byte, i uint64, final bool) []byte {
	nonce[0], nonce[1], nonce[2] = 0, 0, 0
	binary.BigEndian.PutUint64(nonce[3:11], i)
	nonce[11] = 0
	if final {
		nonce[11] = 1
	}
	return nonce
}

// snapWriter encrypts a snapshot's stream into w.
type snapWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	buf    []byte // plaintext of the chunk being filled
	out    []byte
	nonce  [12]byte
	i      uint64
	err    error
	closed bool
}

// newSnapWriter writes the header of snapshot id to w and returns the
// writer that encrypts the rest; close must be called to write the final
// chunk.
func newSnapWriter(w io.Writer, key []byte, id string) (*snapWriter, error) {
	salt := make([]byte, snapSalt)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	aead, err := snapAEAD(key, salt, id)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(append([]byte(snapMagic), salt...)); err != nil {
		return nil, err
	}
	return &snapWriter{w: w, aead: aead, buf: make([]byte, 0, snapChunk),
		out: make([]byte, 0, snapChunk+snapTag)}, nil
}

// Write encrypts p; it reports len(p) on success, as Raft counts the
// plaintext it writes.
func (s *snapWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, errors.New("write to a closed snapshot")
	}
	n := 0
	for len(p) > 0 {
		if len(s.buf) == snapChunk {
			// More follows, so this chunk is not the last.
			if s.err = s.seal(false); s.err != nil {
				return n, s.err
			}
		}
		k := copy(s.buf[len(s.buf):snapChunk], p)
		s.buf = s.buf[:len(s.buf)+k]
		p = p[k:]
		n += k
	}
	return n, nil
}

// close seals the last chunk (possibly empty); closing again does
// nothing, as closing a raft.SnapshotSink again does.
func (s *snapWriter) close() error {
	if s.closed || s.err != nil {
		return s.err
	}
	s.closed = true
	s.err = s.seal(true)
	return s.err
}

func (s *snapWriter) seal(final bool) error {
	s.out = s.aead.Seal(s.out[:0], snapNonce(s.nonce[:], s.i, final), s.buf, nil)
	s.i++
	s.buf = s.buf[:0]
	_, err := s.w.Write(s.out)
	return err
}

// snapReader decrypts a snapshot's stream.
type snapReader struct {
	r     *bufio.Reader
	c     io.Closer
	aead  cipher.AEAD
	id    string
	in    []byte
	plain []byte // authenticated plaintext not yet read
	nonce [12]byte
	i     uint64
	done  bool // the final chunk was read
}

// newSnapReader reads the header of snapshot id from rc.
func newSnapReader(rc io.ReadCloser, key []byte, id string) (*snapReader, error) {
	r := bufio.NewReaderSize(rc, snapChunk+snapTag)
	hdr := make([]byte, len(snapMagic)+snapSalt)
	if _, err := io.ReadFull(r, hdr); err != nil || string(hdr[:len(snapMagic)]) != snapMagic {
		return nil, fmt.Errorf("snapshot %s is not encrypted, or its header is damaged: %w", id, errSnapshotAuth)
	}
	aead, err := snapAEAD(key, hdr[len(snapMagic):], id)
	if err != nil {
		return nil, err
	}
	return &snapReader{r: r, c: rc, aead: aead, id: id, in: make([]byte, snapChunk+snapTag)}, nil
}

func (s *snapReader) Read(p []byte) (int, error) {
	for len(s.plain) == 0 {
		if s.done {
			return 0, io.EOF
		}
		if err := s.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.plain)
	s.plain = s.plain[n:]
	return n, nil
}

// next reads and opens one chunk: the final one is shorter than a full
// chunk or followed by the end of the file.
func (s *snapReader) next() error {
	n, err := io.ReadFull(s.r, s.in)
	final := false
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		final = true
	case err != nil:
		return err
	default:
		_, perr := s.r.Peek(1)
		if perr == io.EOF {
			final = true
		} else if perr != nil {
			return perr
		}
	}
	if n < snapTag {
		return fmt.Errorf("snapshot %s: %w", s.id, errSnapshotAuth)
	}
	plain, err := s.aead.Open(s.in[:0], snapNonce(s.nonce[:], s.i, final), s.in[:n], nil)
	if err != nil {
		return fmt.Errorf("snapshot %s: chunk %d: %w", s.id, s.i, errSnapshotAuth)
	}
	s.i++
	s.plain, s.done = plain, final
	return nil
}

func (s *snapReader) Close() error { return s.c.Close() }

// openSnapshot opens snapshot id of store for reading in plaintext: as
// stored without key, else authenticated through to its end first (so
// that a restore never starts on a snapshot that would fail part way)
// and then decrypted as it is read. The returned metadata's Size is the
// plaintext's, which Raft sends as the size of an install.
func openSnapshot(store raft.SnapshotStore, key []byte, id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := store.Open(id)
	if err != nil || key == nil {
		return meta, rc, err
	}
	sr, err := newSnapReader(rc, key, id)
	if err != nil {
		rc.Close()
		return nil, nil, err
	}
	n, err := io.Copy(io.Discard, sr)
	sr.Close()
	if err != nil {
		return nil, nil, err
	}
	meta, rc, err = store.Open(id)
	if err != nil {
		return nil, nil, err
	}
	if sr, err = newSnapReader(rc, key, id); err != nil {
		rc.Close()
		return nil, nil, err
	}
	m := *meta
	m.Size = n
	return &m, sr, nil
}

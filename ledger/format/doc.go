// Package format implements the byte format of xborder's audit ledger and
// the offline verification of a ledger export: the leaf (the canonical
// entry header), the salted body and its hash, the C2SP checkpoint signed
// as a note, the export directory, and Verify, which checks an export with
// nothing but the agency's verifier key. docs/ledger-format.md specifies
// the same bytes in prose.
//
// # How
//
// EncodeLeaf and DecodeLeaf convert a Header to and from its leaf bytes,
// the exact bytes whose RFC 6962 leaf hash is in the tree; DecodeLeaf
// accepts only what EncodeLeaf writes. EncodeBody and DecodeBody do the
// same for a Body, and BodyHash hashes a salted body under its own domain.
// ParseCheckpoint opens a signed C2SP tlog-checkpoint with a note verifier
// key (VerifierKey makes one from an Ed25519 public key).
//
// An export is three files (ExportCheckpoint, ExportPublicKey,
// ExportEntries). Verify reads them from an fs.FS (os.DirFS of the export
// directory), checks the checkpoint's signature, every line's header and
// body against its leaf, recomputes the tree from the leaves and compares
// it with the checkpoint's size and root, and, given an earlier trusted
// checkpoint, proves that the export extends it:
//
//	checkpoint ──signature──▶ origin, size N, root R
//	entries.jsonl line i ──▶ leaf ══ EncodeLeaf(header), index i,
//	                         BodyHash(salt, body) ══ leaf's body hash
//	leaves 0…N-1 ──RFC 6962──▶ root ══ R
//	trusted checkpoint (M, R') ──consistency proof M→N──▶ R' and R
//	witness keys, quorum Q ──cosignature/v1──▶ at least Q partners cosigned
//
// VerifyQuorum adds the last line: the partners' witnesses' cosignatures
// on the checkpoint (C2SP tlog-cosignature, Ed25519 cosignature/v1),
// checked by a verifier written here on the standard library (Cosigners).
//
// The package imports only the standard library, golang.org/x/mod/sumdb
// and transparency-dev's formats, and does no I/O of its own: a verifier
// built from it needs neither badger, Raft nor a network.
//
// # Security
//
// Verify proves that an export is the tree the checkpoint commits to and
// that the checkpoint was signed by the key given. With the key from the
// export's own ledger.pub it detects damage only: take the key out of band
// to detect forgery. A valid export does not show that the agency has not
// rewritten its log and signed a new history; a trusted earlier checkpoint
// shows that this history extends the one it saw, and a quorum of
// partners' cosignatures (VerifyQuorum) that the partners saw this tree
// extend every checkpoint of it they cosigned before (docs/witness.md). Entry headers carry
// no personal data of data subjects; bodies carry officers' data, and are
// salted so that a body hash reveals nothing once the body is pruned.
// Nothing here is constant time: it handles no secrets.
package format

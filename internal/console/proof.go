package console

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger/format"
)

// A check is one step of the auditor's verification, as the page shows it.
type check struct {
	What string
	OK   bool
	Err  string
}

// proofCheck is the verification of one entry against a signed checkpoint.
type proofCheck struct {
	Checks []check
	OK     bool // every check passed
	Size   uint64
	Root   string
	Key    string // the verifier key used
}

// verifyEntry checks entry index, served as p, against the signed
// checkpoint note cp with the agency's verifier key, with the functions an
// offline auditor's `xborder ledger verify` and `ledger show` use
// (ledger/format and x/mod's tlog): the checkpoint's signature, that the
// proof is for the checkpoint's tree, that the leaf encodes the header,
// that the body matches its salted hash, and that the RFC 6962 inclusion
// proof leads from the leaf to the checkpoint's root. It stops at the
// first failure.
func verifyEntry(key string, cp []byte, index uint64, p httpapi.EntryProof) proofCheck {
	out := proofCheck{Key: key}
	step := func(what string, err error) bool {
		c := check{What: what, OK: err == nil}
		if err != nil {
			c.Err = err.Error()
		}
		out.Checks = append(out.Checks, c)
		return err == nil
	}
	if !step("the console has the agency's ledger key", func() error {
		if key == "" {
			return fmt.Errorf("the node gave the console no verifier key: no checkpoint can be verified")
		}
		return nil
	}()) {
		return out
	}
	c, err := format.ParseCheckpoint(cp, key)
	if !step("the checkpoint is signed by the agency's ledger key", err) {
		return out
	}
	out.Size, out.Root = c.Size, base64.StdEncoding.EncodeToString(c.Root[:])
	if !step("the proof is for the checkpoint's tree", func() error {
		if p.Size != c.Size || p.Root != out.Root {
			return fmt.Errorf("the proof is for a tree of %d entries with root %s, the checkpoint's has %d entries and root %s", p.Size, p.Root, c.Size, out.Root)
		}
		if p.Entry.Index != index || index >= c.Size {
			return fmt.Errorf("the node sent entry %d for entry %d in a tree of %d", p.Entry.Index, index, c.Size)
		}
		return nil
	}()) {
		return out
	}
	if !step("the leaf is the header's encoding", func() error {
		if !bytes.Equal(format.EncodeLeaf(&p.Entry.Header), p.Leaf) {
			return fmt.Errorf("the header shown does not encode to the leaf in the tree")
		}
		return nil
	}()) {
		return out
	}
	if !step("the body matches the body hash in the leaf", func() error {
		if p.Entry.Pruned {
			return nil
		}
		if format.BodyHash(p.Entry.Salt, p.Entry.Body) != p.Entry.BodyHash {
			return fmt.Errorf("the body shown does not hash to the leaf's body hash")
		}
		return nil
	}()) {
		return out
	}
	if !step("the inclusion proof leads from the leaf to the checkpoint's root", func() error {
		proof := make(tlog.RecordProof, len(p.Proof))
		for i, s := range p.Proof {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b) != tlog.HashSize {
				return fmt.Errorf("proof hash %d is not a base64 SHA-256 hash", i)
			}
			copy(proof[i][:], b)
		}
		return tlog.CheckRecord(proof, int64(c.Size), c.Root, int64(index), tlog.RecordHash(p.Leaf))
	}()) {
		return out
	}
	out.OK = true
	return out
}

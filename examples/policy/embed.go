// Package policyexample holds the example policy of five agencies (GB, TH,
// DE, NL, FR): policy.cedar, which Cedar decides by, and limits.yaml, which
// sets the numbers. It builds both files into the program, so that a
// built xborder runs `testnet demo` wherever an operator puts it, without
// the repository around it (testnet uses them unless told another
// directory).
//
// The files are the ones of this directory; docs/policy.md is their
// reference.
package policyexample

import (
	"embed"
	"io/fs"
)

// Names of the two files in FS, which policy apply takes as --policy and
// --limits.
const (
	PolicyFile = "policy.cedar"
	LimitsFile = "limits.yaml"
)

//go:embed policy.cedar limits.yaml
var files embed.FS

// FS returns the two files, PolicyFile and LimitsFile, read-only.
func FS() fs.FS { return files }

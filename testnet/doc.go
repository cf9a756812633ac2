// Package testnet runs a whole xborder federation on one machine: several
// agencies, each with its replicas as child processes on loopback ports,
// built and driven through the same xborder verbs an operator, a data
// steward, an investigator, an approver, an auditor and a liaison officer
// use; and it runs the demo, a scripted scenario whose checks show the
// design's promises hold.
//
// # How
//
// Generate writes synthetic holdings per agency (phone numbers in the
// country's national formats, bitcoin P2PKH and bech32 addresses from
// random hashes, EIP-55 ethereum addresses, IBANs with valid mod-97 check
// digits, e-mail addresses, postal addresses and identity documents) with
// identifiers planted in the holdings of every pair of agencies, each
// holder writing them its own way. Every generated identifier encodes its
// role (held, planted or decoy), its agency and a serial number, so the
// ground truth (DIR/truth.json) is exact by construction, and everything
// is deterministic from the seed.
//
// Up builds the federation as an operator would, one agency per country of
// examples/policy/ (GB, TH, DE, NL, FR): xborder init; node run; replica
// add and node run --join for every further replica; user add for an
// investigator, an approver, an auditor, a steward and a liaison (tokens
// in files of mode 0600); policy apply with the example policy built into the
// program (examples/policy, package policyexample) or the files of
// Config.PolicyDir, so that a built xborder runs it anywhere; card and
// partner add between every pair, with the fingerprint that card printed;
// data import of the holdings. Each replica runs in a process group of its own and gets
// SIGKILL should this process die; Net.Close sends SIGTERM to each group,
// SIGKILL after a bound, and then checks that no child process remains and
// that none of their ports still listens (from /proc/net/tcp and tcp6).
//
// Demo runs Up, the scenario of docs/testnet.md (holdings and set digests,
// queries of several kinds from every agency to all partners checked
// against the ground truth, other spellings, a query over budget denied on
// both ledgers, a query approved by the approver, the SIGKILL of a leader
// replica in the middle of a query, ledger exports verified offline and
// searched for every planted identifier), and Close, printing PASS or FAIL
// per check through a Report and the final line "N passed, M failed".
// Config.Break breaks one part on purpose so that tests see checks fail.
//
// Chaos runs the federation under a seeded nemesis (docs/RELIABILITY.md):
// every Raft link between replicas and every libp2p link between agencies
// through a toxiproxy proxy of its own (in a binary built with the chaos
// tag), partitions, cut partners, latency, resets, SIGKILL and restart,
// SIGSTOP and SIGCONT, clock skew; a workload whose every operation is
// recorded with invoke and complete times and outcome; and, once healed,
// checks of the history (porcupine, against an append-only log model per
// agency) and of the invariants over the final ledgers.
//
// # Security
//
// A testnet is for demonstrations and tests on one machine: its agencies'
// keys, tokens and holdings are plain files under one directory, its
// holdings are synthetic, and every agency runs the example policy. The
// table it prints names token files, never tokens. The demo's last check
// searches every ledger export for every planted identifier in canonical
// form and as its SHA-256 (hex and base64): DESIGN.md's "no identifier on
// the ledger" invariant, seen from outside the node.
package testnet

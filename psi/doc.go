// Package psi implements xborder's private set intersection: an unbalanced,
// verifiable OPRF-based PSI on RFC 9497 VOPRF (ristretto255-SHA512, circl's
// oprf and zk/dleq packages), over byte strings the caller has already
// canonicalised and framed. It does no I/O, takes no context, and starts no
// goroutine that outlives a call; randomness comes in as an io.Reader.
//
// # How
//
// A responder holds one key per (epoch, kind, reach), derived with RFC 9497
// DeriveKeyPair from the epoch seed with info
// "xborder/v1|<agency>|<kind>|<epoch>|<reach>" (xborder's reaches split the
// holdings by subject class: open, victim, witness); the seed of epoch e+1 is
// Seed.Next: HKDF-SHA256(seed(e), "xborder/v1/ratchet"). The responder
// precomputes the PRF outputs of its holdings on all cores and publishes
// them as an EncodedSet (then Deltas for additions). A querier blinds its
// inputs, the responder evaluates them under the key and proves it, and the
// querier verifies, finalises and looks the outputs up in its copy of the
// set:
//
//	Querier (pinned pk, set copy)                 Responder (sk, holdings)
//	==================================================================
//	                                              outputs = Precompute(holdings)
//	                         EncodedSet, Deltas   set = EncodeSet(version, outputs)
//	Set = NewSet(set) <--------------------------
//	Set.Apply(delta)
//
//	dedupe, pad to Bucket(n) with Dummy
//	query, req = Blind(inputs, rnd)
//	                       EvalRequest (kind, epoch, chunks of blinded elements)
//	                     ----------------------->
//	                                              (policy, budget, audit: caller)
//	                                              ev = Evaluate(req, rnd):
//	                                                k·B_i on all cores,
//	                                                one DLEQ proof per chunk
//	                       Evaluation (elements, one proof per chunk)
//	                     <-----------------------
//	hits = query.Match(ev, set):
//	  verify every chunk against pk,
//	  unblind, hash (RFC 9497 Finalize),
//	  look up H("xborder/v1/filter" ‖ base ‖ output) in base and deltas
//
// An encoded set of capacity C (Capacity: sixteen steps per octave, at
// least 8/7 of the holdings) holds the values h = SHA-256("xborder/v1/filter"
// ‖ base version ‖ output) scaled into [0, C·2^40) (the version makes two
// builds of the same holdings share no value, so diffing them does not
// separate real entries from padding), Golomb-Rice coded: about 41.6 bits per
// entry. A base set holds Padded(C) = 7C/8 entries, the holdings plus
// padding derived from HKDF(epoch seed,
// "xborder/v1/pad|<kind>|<reach>|<version>"),
// never from a random source, so every replica builds identical bytes
// (EncodedSet.Digest). Deltas keep the base's modulus C·2^40 and may add
// entries (padded to Bucket sizes) until the total reaches C; then the
// responder builds a new base version (ErrSetFull). At 1,000,000 holdings a
// set takes about 5.4 bytes per identifier (5.2 per padded entry).
//
// Several reaches, one blinding: an EvalRequest names no reach, so the
// responders of several reaches can each evaluate the same blinded batch
// under their own key, one Evaluation each. The querier (built without a
// Key) checks each against the pinned key of its reach with
// Query.FinalizeKey or Query.MatchKey (VerifyEvaluation checks the proofs
// alone); an evaluation under another reach's key fails with ErrProof.
//
// Requests are split into chunks of at most 1,024 elements (MaxChunk),
// each with its own batch DLEQ proof, so both the responder's proving and
// the querier's verifying run on all cores, and so a responder's search
// for evaluation errors that cancel in a chunk's composite has few lists
// to work with (see Verifiability below). Proof nonces and blinds are
// drawn from the caller's reader (circl's VerifiableServer.Evaluate would
// draw from crypto/rand, and its ristretto255 RandomScalar ignores its
// reader); the RFC 9497 test vectors run through this package's own code.
//
// Messages (EvalRequest, Evaluation, EncodedSet, Delta) have binary
// encodings that start with a format version and a suite byte; decoders
// check every length against MaxElements, MaxChunk, MaxCapacity and the
// Rice code bounds before allocating, reject the identity element (which
// circl accepts) and trailing bytes, and never panic.
//
// # Security
//
// What each side learns. The querier learns which of its inputs the
// responder holds, the padded size (capacity) of the responder's set, and
// the size of each delta, that is the additions during an epoch; a querier
// that keeps its outputs learns when one of those identifiers is added
// within the epoch without a new query. The responder learns the kind,
// epoch and padded size of a query (the caller adds the case reference and
// legal basis) and never whether anything hit: blinded elements are
// uniformly random group elements, and dummies pad the query to Bucket(n).
// The encoded set alone tests nothing: every value depends on an output
// that only the key holder can compute.
//
// Verifiability. Every chunk's DLEQ proof shows that its evaluations were
// computed with the secret key behind the pinned public key; a responder
// that uses another key (for one chunk or all), swaps, drops or alters
// elements, or sends the identity, fails with ErrProof or ErrMalformed and
// the querier gets no output at all. One limit: RFC 9497's composite
// coefficients each bind only their own element, so a responder can search
// for wrong evaluations whose errors cancel in a chunk's composite (a
// generalised birthday search, online and per query) and so hide hits; the
// cap of 1,024 elements per chunk puts that at about 2^33 work and memory
// per chunk, which raises the cost but does not rule it out. docs/psi.md
// has the figures and the fix (coefficients bound to the whole chunk). The kind a request declares selects
// the key, and the kind is also framed into every input by the caller, so
// a partner allowed one kind learns nothing by blinding another. Likewise
// the reach selects the key: a partner that gets no evaluation under a
// reach's key cannot test any identifier against that reach's set; which
// reaches a request may have evaluated is the caller's policy decision.
//
// False positives. For a non-member output the 128-bit filter digest x is
// uniform, so h = floor(x·C/2^88) is uniform on [0, C·2^40) up to a bias
// below 2^-64. The base and all deltas together hold at most C values, so
// the chance that h equals one of them is at most C/(C·2^40) = 2^-40 per
// looked-up element, for base and deltas together. A whole query of n
// elements has at most n·2^-40 (2^-26.7 for 10,240 elements).
//
// Not constant time: set encoding, decoding and lookups (binary search
// keyed by the querier's outputs, observable only on the querier's own
// machine), de-duplication of the querier's inputs (a map), proof
// verification (public data), and the length checks of decoders. The
// server's scalar multiplications and proofs, blinding, and unblinding use
// circl's constant-time ristretto255 arithmetic.
//
// Enumeration. Nothing in a PRF protocol stops a querier from evaluating
// candidate identifiers it guesses: phone numbers and wallet addresses are
// enumerable. What the protocol guarantees is that each test is an online
// evaluation by the key holder. That is why the caller must check policy,
// count the padded size against budgets (per partner, kind, case and key;
// RFC 9497 §7.2.3 advises capping evaluations per key) and commit an audit
// entry before calling Responder.Evaluate: budgets, not cryptography, bound
// how much of an identifier space a partner can sweep.
//
// Keys: a Seed yields every key of its epoch; erase it when the epoch
// retires, which makes old encoded sets unusable (forward secrecy). Query
// holds blinds and inputs: keep it in memory and drop it after Match.
package psi

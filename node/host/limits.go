package host

import (
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// DefaultLimits returns the resource manager's limits: libp2p's default
// scaling limits at a fixed 256 MiB and 512 file descriptors (so that they
// do not depend on the machine), then these explicit limits, sized for a
// replica with up to about a hundred partner replicas:
//
//	scope      conns (in/out)   streams (in/out)    FDs   memory
//	system     256 (128/128)    2048 (1024/1024)    256   512 MiB
//	transient   32 (16/16)      2048 (1024/1024)     32    32 MiB
//	each peer    8 (4/4)          96 (32/64)          8    64 MiB
//	each stream                                            16 MiB
//
// Transient is what a connection or stream uses before its peer and
// protocol are known; the per-peer limit keeps one partner from starving the
// others. A stream counts as transient until its protocol is negotiated
// (libp2p gives that 10 seconds), so a transient stream limit below the
// system's let one pinned peer that opens streams and never negotiates
// shut every other partner out (the hostile-partner harness of issue 19
// did it with 32 streams): transient streams are bounded by the system
// limit, and a peer by its own 32, so that one agency, even with the 16
// replicas a card may list, holds at most half of the system's inbound
// streams.
func DefaultLimits() rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	base := scaling.Scale(256<<20, 512)
	explicit := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns: 256, ConnsInbound: 128, ConnsOutbound: 128,
			Streams: 2048, StreamsInbound: 1024, StreamsOutbound: 1024,
			FD: 256, Memory: 512 << 20,
		},
		Transient: rcmgr.ResourceLimits{
			Conns: 32, ConnsInbound: 16, ConnsOutbound: 16,
			Streams: 2048, StreamsInbound: 1024, StreamsOutbound: 1024,
			FD: 32, Memory: 32 << 20,
		},
		PeerDefault: rcmgr.ResourceLimits{
			Conns: 8, ConnsInbound: 4, ConnsOutbound: 4,
			Streams: 96, StreamsInbound: 32, StreamsOutbound: 64,
			FD: 8, Memory: 64 << 20,
		},
		Stream: rcmgr.ResourceLimits{Memory: 16 << 20},
	}
	return explicit.Build(base)
}

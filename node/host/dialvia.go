//go:build !chaos

package host

import ma "github.com/multiformats/go-multiaddr"

// viaAddrs returns the addresses to dial a partner replica at: its own,
// without the chaos build tag (dialvia_chaos.go).
func viaAddrs(as []ma.Multiaddr) []ma.Multiaddr { return as }

// directRefused reports whether a dial to a must go through a proxy
// instead: never, without the chaos build tag.
func directRefused(ma.Multiaddr) bool { return false }

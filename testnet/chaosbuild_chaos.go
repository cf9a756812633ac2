//go:build chaos

package testnet

// ChaosBuild reports whether this program was built with the chaos tag:
// only then do its replicas dial through the proxies of `testnet chaos`
// and take a clock offset (node/chaos_on.go).
const ChaosBuild = true

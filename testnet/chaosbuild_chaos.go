//go:build chaos

package testnet

// ChaosBuild reports whether this program was built with the chaos tag:
// only then do its replicas take a clock offset (node/chaos_on.go). The
// proxies are in the path in every build (node.RoutesFile).
const ChaosBuild = true

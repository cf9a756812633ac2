package host

import (
	"sync"

	ma "github.com/multiformats/go-multiaddr"
)

// A host dials partner replicas through the routes of its data directory
// (node's routes.json: port forwards, tunnels, or the proxies of `testnet
// chaos`): the address a card lists is replaced by the route's, and a dial
// to the card's own address (one learned by identify, say) is refused, so
// every link to that replica takes the route. Without routes (SetDialVia
// never called) every address is dialled as it is.
var (
	viaMu sync.RWMutex
	via   map[string]string
	// direct holds the addresses that have a proxy.
	direct map[string]bool
)

// SetDialVia sets the route of each partner replica address (multiaddr
// to multiaddr), for every host of the process (`node run` runs one).
func SetDialVia(m map[string]string) {
	viaMu.Lock()
	defer viaMu.Unlock()
	via, direct = map[string]string{}, map[string]bool{}
	for k, v := range m {
		via[k] = v
		direct[k] = true
	}
}

func viaAddrs(as []ma.Multiaddr) []ma.Multiaddr {
	viaMu.RLock()
	defer viaMu.RUnlock()
	out := make([]ma.Multiaddr, 0, len(as))
	for _, a := range as {
		if p, ok := via[a.String()]; ok {
			if pa, err := ma.NewMultiaddr(p); err == nil {
				out = append(out, pa)
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

func directRefused(a ma.Multiaddr) bool {
	viaMu.RLock()
	defer viaMu.RUnlock()
	return direct[a.String()]
}

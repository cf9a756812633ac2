package testnet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/xborder/xborder/node"
)

// link is one directed link of the federation, from the replica that dials
// to the replica it dials, through a proxy on loopback that the nemesis
// controls.
type link struct {
	kind     string // "raft" (within an agency) or "p2p" (between agencies)
	from, to *Replica
	fromAg   string
	toAg     string
	proxy    *toxiproxy.Proxy
	upstream string // the address the proxy forwards to
}

// proxies are every link's proxy, in this process (toxiproxy as a
// library; no API server listens).
type proxies struct {
	srv   *toxiproxy.ApiServer
	mu    sync.Mutex
	links []*link
}

func newProxies() *proxies {
	return &proxies{srv: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())}
}

// add starts a proxy on a free loopback port for the link.
func (ps *proxies) add(l *link) error {
	name := fmt.Sprintf("%s %s/%s>%s/%s", l.kind, l.fromAg, l.from.ID, l.toAg, l.to.ID)
	p := toxiproxy.NewProxy(ps.srv, name, "127.0.0.1:0", l.upstream)
	if err := p.Start(); err != nil {
		return fmt.Errorf("chaos: proxy %s: %w", name, err)
	}
	l.proxy = p
	ps.mu.Lock()
	ps.links = append(ps.links, l)
	ps.mu.Unlock()
	return nil
}

// listen returns the address the link's proxy listens on.
func (l *link) listen() string { return l.proxy.Listen }

// close stops every proxy and checks that none of their ports still
// listens.
func (ps *proxies) close() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var ports []int
	for _, l := range ps.links {
		addr := l.listen()
		l.proxy.Stop()
		if p, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:]); err == nil {
			ports = append(ports, p)
		}
	}
	left, err := stillListening(ports)
	if err == nil && len(left) > 0 {
		err = fmt.Errorf("chaos: proxy ports %v still listening after every proxy stopped", left)
	}
	return err
}

// setEnabled opens (true) or cuts (false) the links that sel selects: a
// cut link refuses new connections and closes those it carries.
func (ps *proxies) setEnabled(sel func(*link) bool, on bool) (n int, err error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, l := range ps.links {
		if !sel(l) {
			continue
		}
		n++
		if on {
			l.proxy.Lock()
			enabled := l.proxy.Enabled
			l.proxy.Unlock()
			if !enabled {
				if e := l.proxy.Start(); e != nil && err == nil {
					err = fmt.Errorf("chaos: reopen proxy %s: %w", l.proxy.Name, e)
				}
			}
		} else {
			l.proxy.Stop()
		}
	}
	return n, err
}

// addToxic adds a toxic (toxiproxy's JSON form: name, type, stream,
// attributes) to the links sel selects.
func (ps *proxies) addToxic(sel func(*link) bool, toxicJSON string) (int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	for _, l := range ps.links {
		if !sel(l) {
			continue
		}
		if _, err := l.proxy.Toxics.AddToxicJson(strings.NewReader(toxicJSON)); err != nil {
			return n, fmt.Errorf("chaos: toxic on %s: %w", l.proxy.Name, err)
		}
		n++
	}
	return n, nil
}

// heal opens every link and removes every toxic.
func (ps *proxies) heal() error {
	_, err := ps.setEnabled(func(*link) bool { return true }, true)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, l := range ps.links {
		for _, t := range l.proxy.Toxics.GetToxicArray() {
			_ = l.proxy.Toxics.RemoveToxic(context.Background(), toxicName(t))
		}
	}
	return err
}

func toxicName(t toxics.Toxic) string {
	if w, ok := t.(*toxics.ToxicWrapper); ok {
		return w.Name
	}
	return ""
}

// wire builds a proxy for every directed link of the federation: between
// the replicas of each agency (their Raft transport) and from every
// replica to every replica of the other agencies (libp2p), and writes
// each replica's routes.json (node.RoutesFile, read in every build). The
// replicas read it at their next start.
func (ps *proxies) wire(n *Net) error {
	for _, a := range n.Agencies {
		for _, from := range a.Replicas {
			rt := node.Routes{Raft: map[string]string{}, P2P: map[string]string{}}
			for _, b := range n.Agencies {
				for _, to := range b.Replicas {
					if to == from {
						continue
					}
					bound, err := readBoundOf(to)
					if err != nil {
						return err
					}
					l := &link{from: from, to: to, fromAg: a.Code, toAg: b.Code}
					if a == b {
						l.kind, l.upstream = "raft", bound.Raft
					} else {
						l.kind = "p2p"
						l.upstream, err = tcpOf(bound.P2P)
						if err != nil {
							return err
						}
					}
					if err := ps.add(l); err != nil {
						return err
					}
					if a == b {
						rt.Raft[bound.Raft] = l.listen()
					} else {
						rt.P2P[bound.P2P] = "/ip4/127.0.0.1/tcp/" + l.listen()[strings.LastIndexByte(l.listen(), ':')+1:]
					}
				}
			}
			if err := node.WriteRoutes(from.Dir, rt); err != nil {
				return fmt.Errorf("chaos: %w", err)
			}
		}
	}
	return nil
}

// clockFile is node's chaos.json (node/chaos_on.go): the clock offset of a
// replica built with the chaos tag.
type clockFile struct {
	ClockOffset string `json:"clock_offset,omitempty"`
}

// writeClockFile writes DIR/chaos.json.
func writeClockFile(dir string, cf clockFile) error {
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chaos.json"), b, 0o644); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	return nil
}

// tcpOf turns /ip4/ADDR/tcp/PORT into ADDR:PORT.
func tcpOf(m string) (string, error) {
	f := strings.Split(m, "/")
	if len(f) < 5 || f[1] != "ip4" || f[3] != "tcp" {
		return "", fmt.Errorf("chaos: %q is not /ip4/ADDR/tcp/PORT", m)
	}
	return f[2] + ":" + f[4], nil
}

// readBoundOf reads the addresses replica r bound (its listen.json).
func readBoundOf(r *Replica) (*node.Bound, error) {
	b, err := node.ReadBound(r.Dir)
	if err != nil {
		return nil, fmt.Errorf("chaos: replica %s: %w", r.ID, err)
	}
	return b, nil
}

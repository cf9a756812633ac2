package tlsnet

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestLayerAdmit: a layer's admission check sees the authenticated peer's
// replica ID and refuses it before anything is sent on the channel; other
// peers and other channels are not affected; a nil check admits again.
func TestLayerAdmit(t *testing.T) {
	ca := newTestCA(t, "DE")
	a := listen(t, config(t, ca, ca, "r1", time.Now()))
	b := listen(t, config(t, ca, ca, "r2", time.Now()))
	c := listen(t, config(t, ca, ca, "r3", time.Now()))
	var wg sync.WaitGroup
	defer wg.Wait()
	audit, data := a.Layer("audit"), a.Layer("data")
	defer audit.Close()
	defer data.Close()
	serveEcho(audit, &wg)
	serveEcho(data, &wg)
	var seen []string
	var mu sync.Mutex
	audit.SetAdmit(func(peer string) error {
		mu.Lock()
		seen = append(seen, peer)
		mu.Unlock()
		if peer == "r2" {
			return fmt.Errorf("replica %s revoked", peer)
		}
		return nil
	})
	if _, err := b.Layer("audit").Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second); !errors.Is(err, ErrRefused) {
		t.Errorf("Dial(audit) as a refused peer = %v; want ErrRefused", err)
	}
	for _, dial := range []struct {
		m    *Mux
		name string
	}{{c, "audit"}, {b, "data"}} {
		conn, err := dial.m.Layer(dial.name).Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second)
		if err != nil {
			t.Fatalf("Dial(%s) as %s: %v", dial.name, dial.m.ReplicaID(), err)
		}
		if got, err := roundTrip(conn, "hi"); err != nil || got != dial.name+" "+dial.m.ReplicaID()+" hi" {
			t.Errorf("round trip on %s as %s = %q, %v", dial.name, dial.m.ReplicaID(), got, err)
		}
		conn.Close()
	}
	audit.SetAdmit(nil)
	conn, err := b.Layer("audit").Dial(raft.ServerAddress(a.Addr().String()), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial(audit) after SetAdmit(nil): %v", err)
	}
	conn.Close()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "r2" || seen[1] != "r3" {
		t.Errorf("admission check saw %q; want [r2 r3]", seen)
	}
}

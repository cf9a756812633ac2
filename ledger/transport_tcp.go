package ledger

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tcpLayer is the plain TCP StreamLayer of a lone replica.
type tcpLayer struct{ ln net.Listener }

func (t *tcpLayer) Accept() (net.Conn, error) { return t.ln.Accept() }
func (t *tcpLayer) Close() error              { return t.ln.Close() }
func (t *tcpLayer) Addr() net.Addr            { return t.ln.Addr() }
func (t *tcpLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}

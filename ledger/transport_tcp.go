package ledger

import (
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// listenTCP returns the plain TCP StreamLayer of a lone replica (no
// Config.Transport), on a free port of 127.0.0.1.
func listenTCP() (*tcpLayer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &tcpLayer{ln: ln}, nil
}

// tcpLayer is the plain TCP StreamLayer of a lone replica.
type tcpLayer struct{ ln net.Listener }

func (t *tcpLayer) Accept() (net.Conn, error) { return t.ln.Accept() }
func (t *tcpLayer) Close() error              { return t.ln.Close() }
func (t *tcpLayer) Addr() net.Addr            { return t.ln.Addr() }
func (t *tcpLayer) Dial(a raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(a), timeout)
}

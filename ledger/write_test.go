package ledger

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestNoLeaderNoQuorum: a replica that is in no cluster (not bootstrapped,
// never joined) has no leader; writes fail with ErrNoQuorum within their
// bound instead of hanging.
func TestNoLeaderNoQuorum(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir())
	cfg.Bootstrap = false
	cfg.Transport = &tcpLayer{ln: ln}
	l := open(t, cfg)
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := l.Append(ctx, entry(1)); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Append without a leader = %v; want ErrNoQuorum", err)
	}
	if _, err := l.Admit(ctx, admission("q", 1)); !errors.Is(err, ErrNoQuorum) {
		t.Errorf("Admit without a leader = %v; want ErrNoQuorum", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("failing took %s; want about the 300ms bound", d)
	}
	if st := l.Status(); st.Quorum || st.Leader != "" {
		t.Errorf("Status() = %+v; want no quorum, no leader", st)
	}
}

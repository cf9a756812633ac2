package exchange

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNewServerConfig(t *testing.T) {
	good := func() ServerConfig {
		return ServerConfig{Agency: "DE", Signer: keyDE, Keys: allPins(), Admitter: &admitter{},
			Responders: &responders{}, Sets: &sets{}, SyncAuthorizer: authorizer{}, SyncAuditor: &auditor{}}
	}
	tests := []struct {
		name   string
		mutate func(*ServerConfig)
		want   string // "" means valid
	}{
		{"valid", func(*ServerConfig) {}, ""},
		{"match only", func(c *ServerConfig) { c.Sets, c.SyncAuthorizer, c.SyncAuditor = nil, nil, nil }, ""},
		{"no agency", func(c *ServerConfig) { c.Agency = "" }, "no agency"},
		{"no admitter", func(c *ServerConfig) { c.Admitter = nil }, "required"},
		{"sets without auditor", func(c *ServerConfig) { c.SyncAuditor = nil }, "auditor"},
		{"batch over the wire limit", func(c *ServerConfig) { c.MaxBatch = MaxBatch + 1 }, "max batch"},
		{"not ed25519", func(c *ServerConfig) { c.Signer = notEd25519{} }, "ed25519"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			tt.mutate(&cfg)
			_, err := NewServer(cfg)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("NewServer = %v; want %q", err, tt.want)
			}
		})
	}
	if _, err := NewClient(ClientConfig{Agency: "FR", Signer: keyFR}); err == nil {
		t.Fatal("NewClient without keys succeeded")
	}
}

// notEd25519 is a signer of another key type.
type notEd25519 struct{ ed25519.PrivateKey }

func (notEd25519) Public() crypto.PublicKey { return "rsa" }

func TestHandleUnknownProtocol(t *testing.T) {
	w := newWorld(t, 50, nil)
	a, b := pipePair()
	defer a.Close()
	done := make(chan struct{})
	go func() {
		w.server.Handle(context.Background(), peerFR, "/xborder/other/1.0.0", b)
		close(done)
	}()
	_ = a.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(make([]byte, 1)); err == nil {
		t.Fatal("an unknown protocol was answered")
	}
	<-done
}

// Streams are served in parallel, each to its own querier.
func TestMatchConcurrent(t *testing.T) {
	w := newWorld(t, 200, func(c *ServerConfig) { c.Rand = rand.Reader })
	set := w.holderSet()
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qy, q := w.query(phones(190+i, 200+i))
			a, err := w.client.Match(context.Background(), w.opener, "12D3KooWDE", q)
			if err != nil {
				errs <- err.Error()
				return
			}
			hits, err := qy.Match(a.Results[0].Evaluation, set)
			if err != nil || len(hits) != 10-i {
				errs <- "wrong hits"
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := w.ev.calls.Load(); n != 8 {
		t.Fatalf("Evaluate called %d times; want 8", n)
	}
}

package node

import (
	"context"
	"errors"
	"fmt"

	"github.com/xborder/xborder/exchange"
)

// ErrNotPinned: the agency named is not a pinned partner of this node (or
// its card is no longer in force). Pin its card first.
var ErrNotPinned = errors.New("agency not pinned")

// protoHost is where the node-to-node protocols are served (*Host).
type protoHost interface {
	Handle(proto string, fn func(ctx context.Context, from exchange.Peer, st exchange.Stream))
}

// newExchange builds the server of the node-to-node protocols and the
// client with which this node asks partners, from the seams of the
// components in the two configurations, and serves the match and sync
// protocols on host.
func newExchange(host protoHost, sc exchange.ServerConfig, cc exchange.ClientConfig) (*exchange.Server, *exchange.Client, error) {
	srv, err := exchange.NewServer(sc)
	if err != nil {
		return nil, nil, fmt.Errorf("open node: %w", err)
	}
	cl, err := exchange.NewClient(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("open node: %w", err)
	}
	host.Handle(exchange.ProtoMatch, srv.HandleMatch)
	host.Handle(exchange.ProtoSync, srv.HandleSync)
	return srv, cl, nil
}

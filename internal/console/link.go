package console

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultLinkTTL is how long a one-time sign-in link stays good when
// Link is given no ttl.
const DefaultLinkTTL = 15 * time.Minute

// maxLinks bounds the links waiting to be used.
const maxLinks = 1024

// ErrLinkFull: too many sign-in links are waiting to be used. Wait for
// some to be used or to expire (DefaultLinkTTL), then make the link again.
var ErrLinkFull = errors.New("too many sign-in links wait to be used")

// link is a waiting one-time sign-in link: only the hash of its secret
// is kept (the map key), with the user it signs in and its expiry.
type link struct {
	User    string
	Expires time.Time
}

// links holds the waiting one-time sign-in links.
type links struct {
	now func() time.Time

	mu sync.Mutex
	m  map[string]link // secretKey(secret) to the link
}

func newLinks(now func() time.Time) *links {
	return &links{now: now, m: map[string]link{}}
}

// add makes a link for user good for ttl and returns its secret.
func (l *links) add(user string, ttl time.Duration) (string, error) {
	secret := newSecret()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, v := range l.m {
		if !now.Before(v.Expires) {
			delete(l.m, k)
		}
	}
	if len(l.m) >= maxLinks {
		return "", fmt.Errorf("make sign-in link: %w", ErrLinkFull)
	}
	l.m[secretKey(secret)] = link{User: user, Expires: now.Add(ttl)}
	return secret, nil
}

// use consumes the link with secret: it returns its user once, and never
// again; an expired or unknown secret returns false.
func (l *links) use(secret string) (string, bool) {
	if secret == "" {
		return "", false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := secretKey(secret)
	v, ok := l.m[k]
	delete(l.m, k)
	if !ok || !l.now().Before(v.Expires) {
		return "", false
	}
	return v.User, true
}

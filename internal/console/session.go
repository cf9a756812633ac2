package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"sync"
	"time"
)

// secretBytes is the length of every random secret the console makes:
// session IDs, CSRF tokens and sign-in links.
const secretBytes = 32

// newSecret returns a fresh random secret, base64url without padding.
func newSecret() string {
	b := make([]byte, secretBytes)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// secretKey is the store key of a secret: its SHA-256, so that a copy of
// the store (a heap dump, a debugger) holds nothing a browser could
// present.
func secretKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// session is what the store keeps of a signed-in browser: who, until when,
// and the CSRF token its forms carry. It holds no API token and no
// identifier of a query.
type session struct {
	User    string
	Role    string
	Expires time.Time
	CSRF    string
}

// sessions is the server-side session store, in memory: a session is good
// on the replica that made it, until it expires, its user signs out, or
// the replica restarts.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[string]session // secretKey(session ID) to the session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, m: map[string]session{}}
}

// create starts a session for user with role and returns its ID, the
// cookie's value.
func (s *sessions) create(user, role string) (string, session) {
	id := newSecret()
	se := session{User: user, Role: role, Expires: s.now().Add(s.ttl), CSRF: newSecret()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep()
	s.m[secretKey(id)] = se
	return id, se
}

// get returns the live session with ID id.
func (s *sessions) get(id string) (session, bool) {
	if id == "" {
		return session{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := secretKey(id)
	se, ok := s.m[k]
	if !ok {
		return session{}, false
	}
	if !s.now().Before(se.Expires) {
		delete(s.m, k)
		return session{}, false
	}
	return se, true
}

// end deletes the session with ID id.
func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, secretKey(id))
}

// endUser deletes every session of user (removed, or its role changed).
func (s *sessions) endUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, se := range s.m {
		if se.User == user {
			delete(s.m, k)
		}
	}
}

// sweep deletes expired sessions; the caller holds mu.
func (s *sessions) sweep() {
	now := s.now()
	for k, se := range s.m {
		if !now.Before(se.Expires) {
			delete(s.m, k)
		}
	}
}

// snapshot returns a copy of the store, for tests that look for leaks.
func (s *sessions) snapshot() map[string]session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]session, len(s.m))
	for k, v := range s.m {
		out[k] = v
	}
	return out
}

// validCSRF compares a form's CSRF token with the session's in constant
// time.
func validCSRF(se session, token string) bool {
	return token != "" && subtle.ConstantTimeCompare([]byte(se.CSRF), []byte(token)) == 1
}

// preToken is the CSRF token of the sign-in form, before any session: the
// HMAC of the pre-session cookie's random value under the console's key.
// A page of another origin can neither read the cookie nor compute the
// token.
func preToken(key []byte, pre string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("xborder/console/signin\x00" + pre))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// validPreToken checks the sign-in form's CSRF token against the
// pre-session cookie.
func validPreToken(key []byte, pre, token string) bool {
	if pre == "" || token == "" {
		return false
	}
	return hmac.Equal([]byte(preToken(key, pre)), []byte(token))
}

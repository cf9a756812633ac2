package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// maxLimiterKeys bounds the failure limiter's memory: past it, expired keys
// are swept, and if it is still full every failed authentication waits.
const maxLimiterKeys = 1 << 14

// failures limits failed authentications, counted per key over a sliding
// minute: the hash of the token presented and the remote address. It is
// consulted only once a token has failed, so a valid token is never held
// up by anyone else's failures; a retried wrong token, or many wrong tokens
// from one address, are answered 429 without a log line each.
type failures struct {
	max int
	now func() time.Time

	mu    sync.Mutex
	times map[string][]time.Time // key to times of recent failures
}

func newFailures(max int, now func() time.Time) *failures {
	return &failures{max: max, now: now, times: map[string][]time.Time{}}
}

// tokenKey is the limiter key of a token presented: its SHA-256, so that
// no token is held in memory.
func tokenKey(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return "token:" + hex.EncodeToString(h[:])
}

// fail records one failed authentication under each key, unless a key is
// already at the limit: then it records nothing and returns how long to
// wait.
func (f *failures) fail(keys ...string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	var wait time.Duration
	for _, k := range keys {
		if w := f.recent(k, now); w > wait {
			wait = w
		}
	}
	if wait > 0 {
		return wait
	}
	if len(f.times)+len(keys) > maxLimiterKeys {
		for k := range f.times {
			f.recent(k, now)
		}
		if len(f.times)+len(keys) > maxLimiterKeys {
			return time.Minute
		}
	}
	for _, k := range keys {
		f.times[k] = append(f.times[k], now)
	}
	return 0
}

// recent drops k's failures older than a minute and returns how long k must
// wait, or 0.
func (f *failures) recent(k string, now time.Time) time.Duration {
	ts := f.times[k]
	keep := ts[:0]
	for _, t := range ts {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		delete(f.times, k)
		return 0
	}
	f.times[k] = keep
	if len(keep) < f.max {
		return 0
	}
	return time.Minute - now.Sub(keep[0])
}

package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
	"github.com/xborder/xborder/ledger"
	"github.com/xborder/xborder/policy"
)

// nsTokens is the audit group's index of tokens: key the token's SHA-256 in
// hex, value the user name.
const nsTokens = "tokens"

// Roles lists the roles a local user may have, as the policy package
// knows them.
var Roles = []string{"investigator", "approver", "auditor", "steward", "admin", "liaison"}

// userRecord is a user as the audit group's records hold it: the token
// only as its SHA-256.
type userRecord struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	TokenHash string    `json:"token_sha256"`
	Created   time.Time `json:"created"`
}

// policyReader is the policy in force (*policySource).
type policyReader interface {
	Policy() *policy.Set
}

// users are the agency's local users and their tokens, kept as records of
// the audit group (users by name, tokens by hash) with an audit entry per
// change: it authenticates API callers and authorizes their actions under
// the policy in force. It holds no state of its own beyond the init
// admin's token hash and starts no goroutine.
type users struct {
	audit     *raftGroup
	policy    policyReader
	adminHash string // SHA-256 of the init admin's token, seeded into the users once
	now       func() time.Time
	log       *slog.Logger
}

// newUsers returns the users of the audit group; adminHash is the hash of
// the token in admin.token.
func newUsers(audit *raftGroup, pol policyReader, adminHash string, now func() time.Time, log *slog.Logger) *users {
	return &users{audit: audit, policy: pol, adminHash: adminHash, now: now, log: log}
}

// seedAdminOnce records the first admin once per agency (on the leader).
// Errors are logged and retried next tick.
func (s *users) seedAdminOnce() {
	if _, err := s.audit.Get(nsNode, adminSeeded); !errors.Is(err, ledger.ErrNotFound) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.seedAdmin(ctx); err != nil {
		s.log.Warn("seed admin user", "err", err)
	}
}

// seedAdmin records the init admin (user "admin", role admin, the token of
// admin.token) once per agency.
func (s *users) seedAdmin(ctx context.Context) error {
	if _, err := s.audit.Get(nsUsers, adminName); errors.Is(err, ledger.ErrNotFound) {
		rec, _ := json.Marshal(userRecord{Name: adminName, Role: "admin", TokenHash: s.adminHash, Created: s.now().UTC()})
		if err := s.putUser(ctx, rec, adminName, s.adminHash); err != nil {
			return err
		}
	}
	_, err := s.audit.Put(ctx, nsNode, adminSeeded, []byte("1"))
	return err
}

// authenticate returns the user whose token hashes to the token's hash:
// one lookup in the token index (ns "tokens", hash to name), checked
// against the user's record.
func (s *users) authenticate(token string) (httpapi.User, error) {
	h := TokenHash(token)
	if name, err := s.audit.Get(nsTokens, h); err == nil {
		b, err := s.audit.Get(nsUsers, string(name))
		var u userRecord
		if err == nil && json.Unmarshal(b, &u) == nil && subtle.ConstantTimeCompare([]byte(u.TokenHash), []byte(h)) == 1 {
			return httpapi.User{Name: u.Name, Role: u.Role, Created: u.Created}, nil
		}
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return httpapi.User{}, fmt.Errorf("authenticate: %w", err)
	}
	// Until the leader has recorded the init admin, its token file is the
	// record.
	if _, err := s.audit.Get(nsNode, adminSeeded); errors.Is(err, ledger.ErrNotFound) &&
		subtle.ConstantTimeCompare([]byte(h), []byte(s.adminHash)) == 1 {
		return httpapi.User{Name: adminName, Role: "admin"}, nil
	}
	return httpapi.User{}, fmt.Errorf("authenticate: token of no user: %w", httpapi.ErrUnauthorized)
}

// putUser records a user and indexes its token hash.
func (s *users) putUser(ctx context.Context, rec []byte, name, hash string) error {
	if _, err := s.audit.Put(ctx, nsUsers, name, rec); err != nil {
		return err
	}
	_, err := s.audit.Put(ctx, nsTokens, hash, []byte(name))
	return err
}

// authorize decides whether u may do action under the policy in force.
func (s *users) authorize(u httpapi.User, action string) error {
	d := s.policy.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role},
		Action: action, Time: s.now().UTC()})
	if d.Allow {
		return nil
	}
	ids := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		ids = append(ids, r.ID)
	}
	return fmt.Errorf("role %s may not %s under the policy in force (%v): %w", u.Role, action, ids, httpapi.ErrForbidden)
}

// policyManagers returns the names of the users who could manage_policy
// under set now: the recorded users, and the init admin while the leader has
// not recorded it yet.
func (s *users) policyManagers(set *policy.Set) ([]string, error) {
	us, err := s.Users()
	if err != nil {
		return nil, err
	}
	if _, err := s.audit.Get(nsNode, adminSeeded); errors.Is(err, ledger.ErrNotFound) {
		us = append(us, httpapi.User{Name: adminName, Role: "admin"})
	}
	var out []string
	for _, u := range us {
		if set.Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role},
			Action: "manage_policy", Time: s.now().UTC()}).Allow {
			out = append(out, u.Name)
		}
	}
	return out, nil
}

// AddUser adds a user with a fresh token, which it returns: the only time
// the token exists outside the user's token file.
func (s *users) AddUser(ctx context.Context, actor, name, role string) (httpapi.NewUser, error) {
	if !validName(name) {
		return httpapi.NewUser{}, fmt.Errorf("add user %q: use 1 to 64 of a-z, 0-9, '.', '_', '-': %w", name, httpapi.ErrBadRequest)
	}
	if !slices.Contains(Roles, role) {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: role %q is not one of %v: %w", name, role, Roles, httpapi.ErrBadRequest)
	}
	if _, err := s.audit.Get(nsUsers, name); err == nil {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: exists; remove it first: %w", name, httpapi.ErrConflict)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: %w", name, err)
	}
	tok, err := NewToken()
	if err != nil {
		return httpapi.NewUser{}, err
	}
	rec := userRecord{Name: name, Role: role, TokenHash: TokenHash(tok), Created: s.now().UTC()}
	b, _ := json.Marshal(rec)
	if err := s.userEntry(ctx, actor, "add user "+name+" role "+role, b); err != nil {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: %w", name, err)
	}
	if err := s.putUser(ctx, b, name, rec.TokenHash); err != nil {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: %w", name, err)
	}
	s.log.Info("user added", "role", role)
	return httpapi.NewUser{User: httpapi.User{Name: name, Role: role, Created: rec.Created}, Token: tok}, nil
}

// userEntry appends the audit entry of a user change. The user's name is
// personal data: it goes in the body only.
func (s *users) userEntry(ctx context.Context, actor, what string, rec []byte) error {
	_, err := s.audit.Append(ctx, ledger.Entry{
		Header: ledger.Header{Type: ledger.TypeUser, Outcome: ledger.OutcomeOK, Digest: sha256.Sum256(rec)},
		Body:   ledger.Body{Actor: actor, Purpose: what},
	})
	return err
}

// Users lists the users, sorted by name.
func (s *users) Users() ([]httpapi.User, error) {
	out := []httpapi.User{}
	err := s.audit.Scan(nsUsers, "", func(_ string, v []byte) error {
		var u userRecord
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("decode user record: %w", err)
		}
		out = append(out, httpapi.User{Name: u.Name, Role: u.Role, Created: u.Created})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// RemoveUser removes a user; its token stops working at once.
func (s *users) RemoveUser(ctx context.Context, actor, name string) error {
	old, err := s.audit.Get(nsUsers, name)
	if errors.Is(err, ledger.ErrNotFound) {
		return fmt.Errorf("remove user %q: no such user: %w", name, httpapi.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	var u userRecord
	if err := json.Unmarshal(old, &u); err != nil {
		return fmt.Errorf("remove user %s: decode record: %w", name, err)
	}
	if u.Role == "admin" {
		admins := 0
		s.audit.Scan(nsUsers, "", func(_ string, v []byte) error {
			var o userRecord
			if json.Unmarshal(v, &o) == nil && o.Role == "admin" {
				admins++
			}
			return nil
		})
		if admins <= 1 {
			return fmt.Errorf("remove user %s: the last admin; add another admin first: %w", name, httpapi.ErrConflict)
		}
	}
	if err := s.userEntry(ctx, actor, "remove user "+name, old); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if u.TokenHash != "" {
		if _, err := s.audit.Delete(ctx, nsTokens, u.TokenHash); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
	}
	if _, err := s.audit.Delete(ctx, nsUsers, name); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	return nil
}

// actorName is how an entry body names a user.
func actorName(u httpapi.User) string { return "user:" + u.Name }

// validName reports whether s is a user name: 1 to 64 of [a-z0-9._-],
// starting with a letter or digit.
func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || strings.IndexAny(s[:1], "._-") == 0 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

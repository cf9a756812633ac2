package node

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
var Roles = []string{"investigator", "approver", "auditor", "steward", "admin"}

// userRecord is a user as the audit group's records hold it: the token
// only as its SHA-256.
type userRecord struct {
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	TokenHash string    `json:"token_sha256"`
	Created   time.Time `json:"created"`
}

// seedAdmin records the init admin (user "admin", role admin, the token of
// admin.token) once per agency.
func (n *Node) seedAdmin(ctx context.Context) error {
	if _, err := n.aud.Get(nsUsers, adminName); errors.Is(err, ledger.ErrNotFound) {
		rec, _ := json.Marshal(userRecord{Name: adminName, Role: "admin", TokenHash: n.adminHash, Created: n.now().UTC()})
		if err := n.putUser(ctx, rec, adminName, n.adminHash); err != nil {
			return err
		}
	}
	_, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) {
		return n.aud.Put(ctx, nsNode, adminSeeded, []byte("1"))
	})
	return err
}

// authenticate returns the user whose token hashes to the token's hash:
// one lookup in the token index (ns "tokens", hash to name), checked
// against the user's record.
func (n *Node) authenticate(token string) (httpapi.User, error) {
	h := TokenHash(token)
	if name, err := n.aud.Get(nsTokens, h); err == nil {
		b, err := n.aud.Get(nsUsers, string(name))
		var u userRecord
		if err == nil && json.Unmarshal(b, &u) == nil && subtle.ConstantTimeCompare([]byte(u.TokenHash), []byte(h)) == 1 {
			return httpapi.User{Name: u.Name, Role: u.Role, Created: u.Created}, nil
		}
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return httpapi.User{}, fmt.Errorf("authenticate: %w", err)
	}
	// Until the leader has recorded the init admin, its token file is the
	// record.
	if _, err := n.aud.Get(nsNode, adminSeeded); errors.Is(err, ledger.ErrNotFound) &&
		subtle.ConstantTimeCompare([]byte(h), []byte(n.adminHash)) == 1 {
		return httpapi.User{Name: adminName, Role: "admin"}, nil
	}
	return httpapi.User{}, fmt.Errorf("authenticate: token of no user: %w", httpapi.ErrUnauthorized)
}

// putUser records a user and indexes its token hash.
func (n *Node) putUser(ctx context.Context, rec []byte, name, hash string) error {
	if _, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) { return n.aud.Put(ctx, nsUsers, name, rec) }); err != nil {
		return err
	}
	_, err := n.commit(GroupAudit, "put", func() (ledger.Receipt, error) { return n.aud.Put(ctx, nsTokens, hash, []byte(name)) })
	return err
}

// authorize decides whether u may do action under the policy in force.
func (n *Node) authorize(u httpapi.User, action string) error {
	d := n.Policy().Decide(policy.Request{Principal: policy.Principal{User: u.Name, Role: u.Role},
		Action: action, Time: n.now().UTC()})
	if d.Allow {
		return nil
	}
	ids := make([]string, 0, len(d.Reasons))
	for _, r := range d.Reasons {
		ids = append(ids, r.ID)
	}
	return fmt.Errorf("role %s may not %s under the policy in force (%v): %w", u.Role, action, ids, httpapi.ErrForbidden)
}

// AddUser adds a user with a fresh token, which it returns: the only time
// the token exists outside the user's token file.
func (n *Node) AddUser(ctx context.Context, actor, name, role string) (httpapi.NewUser, error) {
	if !validName(name) {
		return httpapi.NewUser{}, fmt.Errorf("add user %q: use 1 to 64 of a-z, 0-9, '.', '_', '-': %w", name, httpapi.ErrBadRequest)
	}
	if !slices.Contains(Roles, role) {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: role %q is not one of %v: %w", name, role, Roles, httpapi.ErrBadRequest)
	}
	if _, err := n.aud.Get(nsUsers, name); err == nil {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: exists; remove it first: %w", name, httpapi.ErrConflict)
	} else if !errors.Is(err, ledger.ErrNotFound) {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: %w", name, err)
	}
	tok, err := NewToken()
	if err != nil {
		return httpapi.NewUser{}, err
	}
	rec := userRecord{Name: name, Role: role, TokenHash: TokenHash(tok), Created: n.now().UTC()}
	b, _ := json.Marshal(rec)
	if err := n.userEntry(ctx, actor, "add user "+name+" role "+role, b); err != nil {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: %w", name, err)
	}
	if err := n.putUser(ctx, b, name, rec.TokenHash); err != nil {
		return httpapi.NewUser{}, fmt.Errorf("add user %s: %w", name, err)
	}
	n.log.Info("user added", "role", role)
	return httpapi.NewUser{User: httpapi.User{Name: name, Role: role, Created: rec.Created}, Token: tok}, nil
}

// userEntry appends the audit entry of a user change. The user's name is
// personal data: it goes in the body only.
func (n *Node) userEntry(ctx context.Context, actor, what string, rec []byte) error {
	_, err := n.commit(GroupAudit, "append", func() (ledger.Receipt, error) {
		return n.aud.Append(ctx, ledger.Entry{
			Header: ledger.Header{Type: ledger.TypeUser, Outcome: ledger.OutcomeOK, Digest: sha256.Sum256(rec)},
			Body:   ledger.Body{Actor: actor, Purpose: what},
		})
	})
	return err
}

// Users lists the users, sorted by name.
func (n *Node) Users() ([]httpapi.User, error) {
	out := []httpapi.User{}
	err := n.aud.Scan(nsUsers, "", func(_ string, v []byte) error {
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
func (n *Node) RemoveUser(ctx context.Context, actor, name string) error {
	old, err := n.aud.Get(nsUsers, name)
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
		n.aud.Scan(nsUsers, "", func(_ string, v []byte) error {
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
	if err := n.userEntry(ctx, actor, "remove user "+name, old); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	if u.TokenHash != "" {
		if _, err := n.commit(GroupAudit, "delete", func() (ledger.Receipt, error) { return n.aud.Delete(ctx, nsTokens, u.TokenHash) }); err != nil {
			return fmt.Errorf("remove user %s: %w", name, err)
		}
	}
	if _, err := n.commit(GroupAudit, "delete", func() (ledger.Receipt, error) { return n.aud.Delete(ctx, nsUsers, name) }); err != nil {
		return fmt.Errorf("remove user %s: %w", name, err)
	}
	return nil
}

package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xborder/xborder/ledger"
)

// Client calls a node's API. The zero HTTP means a client with a 60 second
// timeout.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:7070
	Token   string // bearer token
	HTTP    *http.Client
}

// AgencyHTTPClient returns an HTTP client for a node API served over TLS
// (bound off loopback): it accepts only a server certificate that chains
// to the agency CA (caPEM, the data directory's ca.crt) and is valid for
// server authentication. Host names are not checked: like the replica
// transport, a replica's identity is its certificate, not its address.
func AgencyHTTPClient(caPEM []byte) (*http.Client, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("agency CA: no PEM certificate")
	}
	verify := func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("node presented no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, b := range raw {
			c, err := x509.ParseCertificate(b)
			if err != nil {
				return err
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS13,
		// The chain is checked by VerifyPeerCertificate against the agency
		// CA only; host names are deliberately not checked.
		InsecureSkipVerify: true, VerifyPeerCertificate: verify}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

// Error is an error answer of the API. It unwraps to the sentinel of its
// status (ErrForbidden for 403, ErrUnavailable for 503, …).
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel of the status.
func (e *Error) Unwrap() error {
	switch e.Status {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusConflict:
		return ErrConflict
	case http.StatusTooManyRequests:
		return ErrTooMany
	case http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// do sends a request with in as its JSON body (nil: none) and decodes the
// answer into out (nil: ignored). A transport failure wraps ErrUnavailable.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %v: %w", method, path, err, ErrBadRequest)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("reach node at %s: %v: %w", c.BaseURL, err, ErrUnavailable)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %v: %w", method, path, err, ErrUnavailable)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(b, &eb) != nil || eb.Error == "" {
			eb.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return &Error{Status: resp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// Status returns the replica's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Ready returns nil when the node is ready, else the reason.
func (c *Client) Ready(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil)
}

// AddUser adds a user and returns its token (shown only this once).
func (c *Client) AddUser(ctx context.Context, name, role string) (NewUser, error) {
	var u NewUser
	return u, c.do(ctx, http.MethodPost, "/v1/users", User{Name: name, Role: role}, &u)
}

// Users lists the users.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var us []User
	return us, c.do(ctx, http.MethodGet, "/v1/users", nil, &us)
}

// RemoveUser removes a user.
func (c *Client) RemoveUser(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/users/"+url.PathEscape(name), nil, nil)
}

// Card returns the agency's signed card.
func (c *Client) Card(ctx context.Context) (Card, error) {
	var cd Card
	return cd, c.do(ctx, http.MethodGet, "/v1/card", nil, &cd)
}

// AddPartner pins a partner's card.
func (c *Client) AddPartner(ctx context.Context, cardText, fingerprint string) (Partner, error) {
	var p Partner
	return p, c.do(ctx, http.MethodPost, "/v1/partners", AddPartner{Card: cardText, Fingerprint: fingerprint}, &p)
}

// Partners lists the pinned partners.
func (c *Client) Partners(ctx context.Context) ([]Partner, error) {
	var ps []Partner
	return ps, c.do(ctx, http.MethodGet, "/v1/partners", nil, &ps)
}

// RemovePartner unpins a partner and closes its connections.
func (c *Client) RemovePartner(ctx context.Context, agency string) error {
	return c.do(ctx, http.MethodDelete, "/v1/partners/"+url.PathEscape(agency), nil, nil)
}

// AddReplica returns the join bundle of a new replica: a JSON document
// holding secrets, to write to a 0600 file.
func (c *Client) AddReplica(ctx context.Context, id string, hosts []string) ([]byte, error) {
	var b json.RawMessage
	return b, c.do(ctx, http.MethodPost, "/v1/replicas", AddReplica{ID: id, Hosts: hosts}, &b)
}

// Replicas lists the members of the agency's Raft groups.
func (c *Client) Replicas(ctx context.Context) ([]Replica, error) {
	var rs []Replica
	return rs, c.do(ctx, http.MethodGet, "/v1/replicas", nil, &rs)
}

// RemoveReplica removes a replica from both groups.
func (c *Client) RemoveReplica(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/replicas/"+url.PathEscape(id), nil, nil)
}

// ApplyPolicy commits new policy files and returns their version.
func (c *Client) ApplyPolicy(ctx context.Context, f PolicyFiles) (string, error) {
	var v PolicyVersion
	return v.Version, c.do(ctx, http.MethodPost, "/v1/policy", f, &v)
}

// PolicyVersion returns the version of the policy in force.
func (c *Client) PolicyVersion(ctx context.Context) (string, error) {
	var v PolicyVersion
	return v.Version, c.do(ctx, http.MethodGet, "/v1/policy", nil, &v)
}

// Entries lists the entries f selects; the read is itself an audit entry
// whose body records purpose.
func (c *Client) Entries(ctx context.Context, purpose string, f ledger.Filter) ([]ledger.Entry, error) {
	q := url.Values{}
	if !f.From.IsZero() {
		q.Set("from", f.From.Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.Format(time.RFC3339))
	}
	for _, t := range f.Types {
		q.Add("type", t.String())
	}
	for k, v := range map[string]string{"partner": f.Partner, "case": f.Case, "actor": f.Actor, "purpose": purpose} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.After > 0 {
		q.Set("after", strconv.FormatUint(f.After, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var es []ledger.Entry
	return es, c.do(ctx, http.MethodGet, "/v1/ledger/entries?"+q.Encode(), nil, &es)
}

// Entry returns one entry with its inclusion proof.
func (c *Client) Entry(ctx context.Context, purpose string, index uint64) (EntryProof, error) {
	var p EntryProof
	path := "/v1/ledger/entries/" + strconv.FormatUint(index, 10)
	if purpose != "" {
		path += "?purpose=" + url.QueryEscape(purpose)
	}
	return p, c.do(ctx, http.MethodGet, path, nil, &p)
}

// Checkpoint asks for the newest signed checkpoint and the newest one the
// partners' witnesses cosigned.
func (c *Client) Checkpoint(ctx context.Context) (Published, error) {
	var p Published
	return p, c.do(ctx, http.MethodGet, "/v1/ledger/checkpoint", nil, &p)
}

// Export asks the node for an export of the whole ledger.
func (c *Client) Export(ctx context.Context) (Export, error) {
	var x Export
	return x, c.do(ctx, http.MethodPost, "/v1/ledger/export", nil, &x)
}

// Prune deletes entry bodies older than before.
func (c *Client) Prune(ctx context.Context, before time.Time) (PruneResult, error) {
	var p PruneResult
	return p, c.do(ctx, http.MethodPost, "/v1/ledger/prune", PruneRequest{Before: before}, &p)
}

// WriteDir writes the export as an export directory (checkpoint,
// ledger.pub, entries.jsonl), which format.Verify (package ledger/format)
// checks offline. dir is created if missing; the files are replaced.
func (x Export) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write export: %w", err)
	}
	for name, body := range map[string]string{
		ledger.ExportCheckpoint: x.Checkpoint,
		ledger.ExportPublicKey:  x.PublicKey,
		ledger.ExportEntries:    x.Entries,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("write export: %w", err)
		}
	}
	return nil
}

// IsUnavailable reports whether err means the node could not serve (503 or
// unreachable): the CLI's exit code 4.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

package testnet

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/xborder/xborder/internal/httpapi"
)

// The messages a replica logs for the sync answers it received
// (node/sync_received.go).
const (
	logSyncReceived    = "sync answer received"
	logSyncDenied      = "sync denial received"
	logSyncUnavailable = "sync unavailable received"
)

// received is one sync answer a querier's replica logged.
type received struct {
	time    time.Time
	replica string // "GB/r1"
	partner string // the owner that answered
	kind    string
	reach   string // "open" when the log names none
	epoch   uint64
	version uint64 // newest version sent (an answer with segments)
	reason  string // a denial's reason
	// unavailable: the replica asked answered unavailable (answered) or
	// could not be reached; it sent nothing to record.
	unavailable, answered bool
}

// receivedSyncs reads the sync answers logged in a replica's log file.
func receivedSyncs(path, replica string) ([]received, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []received
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<16), 1<<20)
	for s.Scan() {
		line := s.Text()
		if !strings.Contains(line, logSyncReceived) && !strings.Contains(line, logSyncDenied) && !strings.Contains(line, logSyncUnavailable) {
			continue
		}
		kv := logfmt(line)
		if kv["msg"] != logSyncReceived && kv["msg"] != logSyncDenied && kv["msg"] != logSyncUnavailable {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, kv["time"])
		if err != nil {
			return nil, fmt.Errorf("%s: time of %q: %w", path, line, err)
		}
		r := received{time: t, replica: replica, partner: kv["partner"], kind: kv["kind"], reach: kv["reach"], reason: kv["reason"],
			unavailable: kv["msg"] == logSyncUnavailable, answered: kv["answered"] == "true"}
		if r.reach == "" {
			r.reach = "open"
		}
		r.epoch, _ = strconv.ParseUint(kv["epoch"], 10, 64)
		r.version, _ = strconv.ParseUint(kv["version"], 10, 64)
		out = append(out, r)
	}
	return out, s.Err()
}

// logfmt splits a log/slog text line into its keys and values (quoted
// values unquoted).
func logfmt(line string) map[string]string {
	kv := map[string]string{}
	for line != "" {
		line = strings.TrimLeft(line, " ")
		eq := strings.IndexByte(line, '=')
		if eq <= 0 {
			break
		}
		k := line[:eq]
		line = line[eq+1:]
		var v string
		if strings.HasPrefix(line, `"`) {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				break
			}
			v, _ = strconv.Unquote(q)
			line = line[len(q):]
		} else {
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				sp = len(line)
			}
			v, line = line[:sp], line[sp:]
		}
		kv[k] = v
	}
	return kv
}

// answersRecorded: every answer a replica sent a partner has its entry on
// the sender's ledger, as the partner's replicas received it:
//   - every sync answer with segments that a querier's replica logged has
//     the owner's sync entry for that querier, kind, epoch and newest
//     version; every sync denial, the owner's denial of a sync of that
//     kind to that querier for that reason (recorded once per reason and
//     policy version);
//   - every query part a partner denied (the querier's match_out is on its
//     ledger, so the denial came from the partner) has the partner's
//     denial entry under its request ID.
//
// Match answers are the exactly-once check's. Only what was received
// before the owner's final export began is checked (the background sync
// goes on while the federation settles).
func (c *checker) answersRecorded() {
	for _, owner := range c.net.Agencies {
		l, ok := c.last[owner.Code]
		xs := c.final.exports[owner.Code]
		if !ok || len(xs) == 0 {
			continue
		}
		cutoff := c.start.Add(time.Duration(xs[len(xs)-1].Invoke * float64(time.Millisecond)))
		served, refused, denied := map[string]bool{}, map[string]bool{}, map[string]int{}
		for _, x := range l.lines {
			h := x.Header
			switch {
			case h.Type.String() == "sync" && h.Partner != "":
				served[fmt.Sprintf("%s/%s/%s/%d/%d", h.Partner, h.Kind, orOpenReach(h.Reaches), h.Epoch, h.SetVersion)] = true
			case h.Type.String() == "denial" && h.Partner != "":
				denied[h.RequestID]++
				if x.Body == nil || strings.HasPrefix(x.Body.Purpose, "sync refused: ") {
					r := ""
					if x.Body != nil {
						r = strings.TrimPrefix(x.Body.Purpose, "sync refused: ")
					}
					refused[h.Partner+"/"+h.Kind+"/"+r] = true
				}
			}
		}
		var bad []string
		answers, denials, matchDenials, unavailable, unreached := 0, 0, 0, 0, 0
		for _, q := range c.net.Agencies {
			if q == owner {
				continue
			}
			for _, r := range q.Replicas {
				rs, err := receivedSyncs(r.Log, q.Code+"/"+r.ID)
				if err != nil {
					bad = append(bad, fmt.Sprintf("read %s's log: %v", q.Code+"/"+r.ID, err))
					continue
				}
				for _, x := range rs {
					if x.partner != owner.Code || x.time.After(cutoff) {
						continue
					}
					switch {
					case x.unavailable && x.answered:
						unavailable++
						continue
					case x.unavailable:
						unreached++
						continue
					}
					if x.reason == "" {
						answers++
						if !served[fmt.Sprintf("%s/%s/%s/%d/%d", q.Code, x.kind, x.reach, x.epoch, x.version)] {
							bad = append(bad, fmt.Sprintf("%s received %s's sync of %s (%s reach) epoch %d up to version %d at %s; no sync entry for it",
								x.replica, owner.Code, x.kind, x.reach, x.epoch, x.version, x.time.UTC().Format("15:04:05.000")))
						}
						continue
					}
					denials++
					if !refused[q.Code+"/"+x.kind+"/"+x.reason] && !refused[q.Code+"//"+x.reason] && !refused[q.Code+"/"+x.kind+"/"] {
						bad = append(bad, fmt.Sprintf("%s received %s's sync denial of %s epoch %d (%s) at %s; no such denial entry",
							x.replica, owner.Code, x.kind, x.epoch, x.reason, x.time.UTC().Format("15:04:05.000")))
					}
				}
			}
			own := c.last[q.Code].byRequest()
			for _, op := range c.agencyOps(q.Code) {
				if op.Kind != "query" {
					continue
				}
				for _, p := range op.Partners {
					if p.Agency != owner.Code || p.Outcome != httpapi.OutcomeDenied || p.RequestID == "" || len(own["match_out/"+p.RequestID]) == 0 {
						continue
					}
					matchDenials++
					if denied[p.RequestID] == 0 {
						bad = append(bad, fmt.Sprintf("op %d %s→%s request %s denied (%s); %s holds no denial under it",
							op.ID, q.Code, owner.Code, short(p.RequestID), p.Reason, owner.Code))
					}
				}
			}
		}
		c.rep.Check(len(bad) == 0, owner.Code+": every sync answer, sync denial and match denial sent has its entry",
			"as received by the partners: %d sync answers, %d sync denials, %d match denials; %d syncs answered unavailable (nothing to record), %d replicas not reached%s",
			answers, denials, matchDenials, unavailable, unreached, evidence(bad))
	}
}

// orOpenReach is the reach a sync entry's header names, "open" for an
// entry that names none (written before reaches).
func orOpenReach(r string) string {
	if r == "" {
		return "open"
	}
	return r
}

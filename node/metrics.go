package node

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the node's Prometheus metrics, in a registry of its own (so
// that two nodes in one process, as in tests, do not collide).
type metrics struct {
	reg           *prometheus.Registry
	raftState     *prometheus.GaugeVec
	leaderChanges *prometheus.CounterVec
	applied       *prometheus.GaugeVec
	commit        *prometheus.HistogramVec
	requests      *prometheus.CounterVec
	requestTime   *prometheus.HistogramVec
	policy        *prometheus.GaugeVec
}

// raftStateValue is the value of xborder_raft_state for a Raft state name.
var raftStateValue = map[string]float64{"Follower": 0, "Candidate": 1, "Leader": 2, "Shutdown": 3}

func newMetrics(connected func() float64, groups func() []group) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		raftState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xborder_raft_state",
			Help: "Raft state of this replica per group: 0 follower, 1 candidate, 2 leader, 3 shutdown.",
		}, []string{"group"}),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xborder_raft_leader_changes_total",
			Help: "Leader changes this replica has seen per group (including losing the leader).",
		}, []string{"group"}),
		applied: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xborder_raft_applied_index",
			Help: "Last Raft index applied to this replica's state per group.",
		}, []string{"group"}),
		commit: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xborder_ledger_commit_seconds",
			Help:    "Time from submitting a ledger write to its commit by a quorum, per group and operation.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"group", "op"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xborder_api_requests_total",
			Help: "API requests by route and HTTP status.",
		}, []string{"route", "status"}),
		requestTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xborder_api_request_seconds",
			Help:    "API request duration by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
		policy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "xborder_policy_info",
			Help: "1 for the version of the policy in force.",
		}, []string{"version"}),
	}
	m.reg.MustRegister(m.raftState, m.leaderChanges, m.applied, m.commit, m.requests, m.requestTime, m.policy,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "xborder_connected_partners",
			Help: "Partner replicas (peers of other agencies) this replica has a libp2p connection to.",
		}, connected),
		newLedgerCollector(groups),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) observeRequest(route string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.requestTime.WithLabelValues(route).Observe(d.Seconds())
}

func (m *metrics) setPolicy(version string) {
	m.policy.Reset()
	m.policy.WithLabelValues(version).Set(1)
}

// ledgerCollector reports each group's ledger counters (ledger.Status)
// when scraped: group commits as leader, syncs of the state to disk and
// connections opened to forward to the leader.
type ledgerCollector struct {
	groups                                       func() []group
	batches, commands, syncs, syncSeconds, dials *prometheus.Desc
	refusedConns, refusedRPCs                    *prometheus.Desc
}

func newLedgerCollector(groups func() []group) *ledgerCollector {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"group"}, nil)
	}
	return &ledgerCollector{
		groups:  groups,
		batches: desc("xborder_ledger_batches_total", "Group commits this replica sent to Raft as leader, per group."),
		commands: desc("xborder_ledger_batched_commands_total",
			"Commands in those group commits (divided by xborder_ledger_batches_total: the mean batch size)."),
		syncs: desc("xborder_ledger_state_syncs_total", "Syncs of the ledger state to disk, per group."),
		syncSeconds: desc("xborder_ledger_state_sync_seconds_total",
			"Time spent in those syncs, per group; slow syncs slow the Raft log writes on the same disk."),
		dials: desc("xborder_ledger_forward_dials_total",
			"Connections opened to forward calls to the leader, per group; a steady rise means connections are being lost."),
		refusedConns: desc("xborder_ledger_refused_connections_total",
			"Replica connections refused at the handshake because their replica is revoked (removed), per group."),
		refusedRPCs: desc("xborder_ledger_refused_rpcs_total",
			"Raft RPCs refused before Raft saw them: the sender is not a voter, or speaks for another replica than its certificate names, per group."),
	}
}

func (c *ledgerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.batches
	ch <- c.commands
	ch <- c.syncs
	ch <- c.syncSeconds
	ch <- c.dials
	ch <- c.refusedConns
	ch <- c.refusedRPCs
}

func (c *ledgerCollector) Collect(ch chan<- prometheus.Metric) {
	for _, g := range c.groups() {
		s := g.l.Status()
		ch <- prometheus.MustNewConstMetric(c.batches, prometheus.CounterValue, float64(s.Batches), g.name)
		ch <- prometheus.MustNewConstMetric(c.commands, prometheus.CounterValue, float64(s.BatchedCommands), g.name)
		ch <- prometheus.MustNewConstMetric(c.syncs, prometheus.CounterValue, float64(s.StateSyncs), g.name)
		ch <- prometheus.MustNewConstMetric(c.syncSeconds, prometheus.CounterValue, s.StateSyncTime.Seconds(), g.name)
		ch <- prometheus.MustNewConstMetric(c.dials, prometheus.CounterValue, float64(s.ForwardDials), g.name)
		ch <- prometheus.MustNewConstMetric(c.refusedConns, prometheus.CounterValue, float64(s.RefusedConns), g.name)
		ch <- prometheus.MustNewConstMetric(c.refusedRPCs, prometheus.CounterValue, float64(s.RefusedRPCs), g.name)
	}
}

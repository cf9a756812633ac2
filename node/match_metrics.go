package node

import (
	"time"

	"github.com/xborder/xborder/exchange"
	"github.com/xborder/xborder/internal/httpapi"

	"github.com/prometheus/client_golang/prometheus"
)

// matchMetrics count match queries in and out. Labels carry only agency
// codes, kinds, outcomes, reason codes and stage names: never an
// identifier, a case reference or a request ID. /metrics needs no token,
// so nothing here tells whether a partner held anything: hits are the
// investigator's alone (issue 19, item 6). An outbound query that was
// answered counts as "answered", whether it found hits or not.
type matchMetrics struct {
	queries *prometheus.CounterVec   // direction, partner, kind, outcome
	denials *prometheus.CounterVec   // direction, reason
	stages  *prometheus.HistogramVec // direction, stage
	// throttled counts the streams of partners over their refusal budget
	// that the exchange server reset unread (partner, proto).
	throttled *prometheus.CounterVec
}

func newMatchMetrics(reg prometheus.Registerer) *matchMetrics {
	m := &matchMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xborder_match_queries_total",
			Help: "Match queries by direction (in: partners asking us; out: per partner we asked), partner, kind and outcome (out: answered, stale, denied, unavailable, failed).",
		}, []string{"direction", "partner", "kind", "outcome"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xborder_match_denials_total",
			Help: "Match denials by direction (in: we denied a partner; out: a partner or our policy denied us) and reason code.",
		}, []string{"direction", "reason"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xborder_match_stage_seconds",
			Help:    "Time spent per match stage (policy, ledger, crypto, network, sync) by direction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"direction", "stage"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xborder_exchange_throttled_total",
			Help: "Streams of a partner over its budget of refused requests that were reset unread, by partner and protocol (match, sync, witness): a flood recorded no further.",
		}, []string{"partner", "proto"}),
	}
	reg.MustRegister(m.queries, m.denials, m.stages, m.throttled)
	return m
}

// throttle counts one stream of from reset by the exchange server because
// its agency is over its refusal budget (exchange.ServerConfig.Throttled).
func (m *matchMetrics) throttle(from exchange.Peer, proto string) {
	if m == nil {
		return
	}
	p := "match"
	switch proto {
	case exchange.ProtoSync:
		p = "sync"
	case exchange.ProtoWitness:
		p = "witness"
	}
	m.throttled.WithLabelValues(from.Agency, p).Inc()
}

// stage records the time since start of one stage.
func (m *matchMetrics) stage(direction, stage string, start time.Time) {
	if m == nil {
		return
	}
	m.stages.WithLabelValues(direction, stage).Observe(time.Since(start).Seconds())
}

func (m *matchMetrics) query(direction, partner, kind, outcome string) {
	if m == nil {
		return
	}
	m.queries.WithLabelValues(direction, partner, kind, outcome).Inc()
}

func (m *matchMetrics) denial(direction, reason string) {
	if m == nil {
		return
	}
	m.denials.WithLabelValues(direction, reason).Inc()
}

// outcomeAnswered stands for the outcomes hits and no_hits in metrics and
// logs, which an operator reads without being the investigator.
const outcomeAnswered = "answered"

// publicOutcome is the outcome of a partner's part as metrics and logs
// show it: whether the partner held anything is left out.
func publicOutcome(outcome string) string {
	if outcome == httpapi.OutcomeHits || outcome == httpapi.OutcomeNoHits {
		return outcomeAnswered
	}
	return outcome
}

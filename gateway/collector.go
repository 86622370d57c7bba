package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector exports, at scrape time, the state the admin API shows:
// every route's upstream instances and every IP feed.
type stateCollector struct {
	g                                *Gateway
	instanceUp, feedUp, feedEntries  *prometheus.Desc
	feedLastSuccess, feedLastAttempt *prometheus.Desc
}

func newStateCollector(g *Gateway) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metricNamespace+"_"+name, help, labels, nil)
	}
	return &stateCollector{
		g:               g,
		instanceUp:      d("upstream_instance_up", "1 when the upstream instance is in rotation (healthy and not ejected), by route and instance.", "route", "instance"),
		feedUp:          d("ip_feed_up", "1 when the IP feed's last refresh (by any replica) succeeded and a list is loaded; 0 keeps the last good list.", "feed"),
		feedEntries:     d("ip_feed_entries", "Entries of the IP feed's list in use on this replica.", "feed"),
		feedLastSuccess: d("ip_feed_last_success_timestamp_seconds", "Last successful download or not-modified check of the IP feed, by any replica.", "feed"),
		feedLastAttempt: d("ip_feed_last_attempt_timestamp_seconds", "Last refresh attempt of the IP feed, by any replica.", "feed"),
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.instanceUp, c.feedUp, c.feedEntries, c.feedLastSuccess, c.feedLastAttempt} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.g.policy.Load() == nil {
		return
	}
	for _, u := range c.g.Upstreams() {
		for _, in := range u.Instances {
			up := 0.0
			if in.State == InstanceHealthy {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.instanceUp, prometheus.GaugeValue, up, u.Route, in.Instance)
		}
	}
	for _, f := range c.g.Feeds() {
		up := 0.0
		if f.LastError == "" && f.Version+boolU(f.Local) > 0 {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.feedUp, prometheus.GaugeValue, up, f.Feed)
		ch <- prometheus.MustNewConstMetric(c.feedEntries, prometheus.GaugeValue, float64(f.Entries), f.Feed)
		if !f.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.feedLastSuccess, prometheus.GaugeValue, float64(f.LastSuccess.UnixMilli())/1e3, f.Feed)
		}
		if !f.LastAttempt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.feedLastAttempt, prometheus.GaugeValue, float64(f.LastAttempt.UnixMilli())/1e3, f.Feed)
		}
	}
}

func boolU(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

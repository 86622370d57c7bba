package console_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampartgw/rampart/alert"
	"github.com/rampartgw/rampart/testutil"
)

// knownMetrics returns the rampart_* metric names the gateway and the
// alerts register: the alerts' from a registry, the gateway's from its
// metrics file (a CounterVec with no series yet is absent from a gather).
func knownMetrics(t *testing.T, root string) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	// The registered metrics, and the collector's (state exported at
	// scrape time: upstream instances, feeds).
	for _, file := range []string{"metrics.go", "collector.go"} {
		src, err := os.ReadFile(filepath.Join(root, "gateway", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?:counter\(|Name:\s*|\bd\()"([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
			known["rampart_"+m[1]] = true
		}
	}
	// With a sink, the alerter registers a series of every family it
	// exports (the per-sink ones have none without a sink). Nothing is
	// sent: the alerter does not run.
	reg := prometheus.NewRegistry()
	cfg := alert.DefaultConfig()
	cfg.Sinks = []alert.SinkConfig{{Name: "x", Type: alert.SinkWebhook, URL: "http://127.0.0.1:1"}}
	if _, err := alert.New(alert.Options{Config: cfg, Replica: "x", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		known[f.GetName()] = true
	}
	if len(known) < 15 {
		t.Fatalf("only %d metrics found: %v", len(known), known)
	}
	return known
}

var metricRE = regexp.MustCompile(`\brampart_[a-z_]+`)

func checkMetrics(t *testing.T, file string, text string, known map[string]bool) {
	t.Helper()
	used := map[string]bool{}
	for _, m := range metricRE.FindAllString(text, -1) {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(m, suffix); ok && known[b] {
				m = b
			}
		}
		used[m] = true
	}
	if len(used) < 8 {
		t.Errorf("%s uses only %d metrics", file, len(used))
	}
	var unknown []string
	for m := range used {
		if !known[m] {
			unknown = append(unknown, m)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("%s uses metrics the gateway does not export: %v", file, unknown)
	}
}

// TestDeployArtefacts: the Prometheus rules and the Grafana dashboard
// use only metrics the gateway exports, the dashboard is well-formed, and
// promtool's unit tests of the rules pass (where promtool is installed).
func TestDeployArtefacts(t *testing.T) {
	root := testutil.ModuleRoot(t)
	known := knownMetrics(t, root)
	rules, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, "alerts.yml", string(rules), known)

	raw, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "rampart.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int                      `json:"id"`
			Type    string                   `json:"type"`
			Title   string                   `json:"title"`
			GridPos struct{ H, W, X, Y int } `json:"gridPos"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) < 10 {
		t.Fatalf("dashboard %q (%s) has %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	ids := map[int]bool{}
	var exprs []string
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q does not fit the grid: %+v", p.Title, p.GridPos)
		}
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			if strings.Count(q.Expr, "(") != strings.Count(q.Expr, ")") || strings.Count(q.Expr, "{") != strings.Count(q.Expr, "}") {
				t.Errorf("panel %q: unbalanced query %q", p.Title, q.Expr)
			}
			exprs = append(exprs, q.Expr)
		}
	}
	checkMetrics(t, "rampart.json", strings.Join(exprs, "\n"), known)

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed (Debian: prometheus): rule unit tests skipped")
		return
	}
	dir := filepath.Join(root, "deploy", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

//go:build e2e || cluster

package e2e

import (
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

type haproxyServer struct {
	name      string
	port      int
	checkPort int
}

// renderHAProxy turns deploy/haproxy/haproxy.cfg into a loopback config
// and changes nothing else: the frontends bind to loopback ports, the
// Docker DNS resolvers section goes, and the server-template line becomes
// one server per gateway process (health checks on its admin port). The
// lines it rewrites are marked "# e2e:" in the source; a missing marker
// fails the test, so the two cannot drift apart silently.
func renderHAProxy(t *testing.T, src string, lbPort, statsPort int, servers []haproxyServer) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var out []string
	inResolvers := false
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "resolvers ") {
			inResolvers = true
			seen["resolvers"]++
			continue
		}
		if inResolvers {
			// The section runs to the next blank line.
			if trimmed == "" {
				inResolvers = false
			}
			continue
		}
		code, marker, _ := strings.Cut(line, "# e2e:")
		marker = strings.TrimSpace(marker)
		if marker != "" {
			seen[marker]++
		}
		switch marker {
		case "bind":
			out = append(out, "    bind 127.0.0.1:"+strconv.Itoa(lbPort))
		case "stats":
			out = append(out, "    bind 127.0.0.1:"+strconv.Itoa(statsPort))
		case "default-server":
			out = append(out, strings.TrimRight(code, " "))
		case "servers":
			for _, s := range servers {
				out = append(out, fmt.Sprintf("    server %s 127.0.0.1:%d port %d", s.name, s.port, s.checkPort))
			}
		case "":
			out = append(out, line)
		default:
			t.Fatalf("%s: unknown e2e marker %q", src, marker)
		}
	}
	for _, m := range []string{"resolvers", "bind", "stats", "default-server", "servers"} {
		if seen[m] != 1 {
			t.Fatalf("%s: expected exactly one %q line (marked # e2e: %s), found %d: keep e2e/haproxy_test.go in step", src, m, m, seen[m])
		}
	}
	return strings.Join(out, "\n")
}

// serverStats is one row of HAProxy's CSV statistics.
type serverStats struct {
	status     string
	sessions   int // stot: connections/requests sent to this server
	retries    int // wretr
	redispatch int // wredis
	connErrors int // econ
	respErrors int // eresp
}

// lbStats reads HAProxy's statistics: the backend's servers by name, and
// the backend itself under "BACKEND".
func (c *cluster) lbStats() (map[string]serverStats, error) {
	resp, err := c.admin.Get("http://127.0.0.1:" + strconv.Itoa(c.statsPort) + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return parseStatsCSV(string(data))
}

func parseStatsCSV(s string) (map[string]serverStats, error) {
	s = strings.TrimPrefix(s, "# ")
	r := csv.NewReader(strings.NewReader(s))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("stats: %d rows", len(rows))
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	num := func(row []string, name string) int {
		n, _ := strconv.Atoi(get(row, name))
		return n
	}
	out := map[string]serverStats{}
	for _, row := range rows[1:] {
		if get(row, "pxname") != "gateways" {
			continue
		}
		out[get(row, "svname")] = serverStats{
			status: strings.Fields(get(row, "status") + " ")[0], sessions: num(row, "stot"),
			retries: num(row, "wretr"), redispatch: num(row, "wredis"),
			connErrors: num(row, "econ"), respErrors: num(row, "eresp"),
		}
	}
	return out, nil
}

// perServer returns the requests each gateway received since before.
func perServer(before, after map[string]serverStats, gws []*gw) string {
	var parts []string
	for _, g := range gws {
		parts = append(parts, fmt.Sprintf("%s %d", g.name, after[g.name].sessions-before[g.name].sessions))
	}
	return strings.Join(parts, ", ")
}

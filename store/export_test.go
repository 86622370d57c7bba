package store

import "strings"

// ScriptSHAs maps the SHA1 of every script the store runs to its first
// line, for the Cluster tests.
func ScriptSHAs() map[string]string {
	out := make(map[string]string, len(scripts))
	for _, l := range scripts {
		first, _, _ := strings.Cut(strings.TrimSpace(l.src), "\n")
		out[l.Hash()] = first
	}
	return out
}

// CheckScript is the check script's source.
func CheckScript() string { return checkScript.src }

// IdleConns is how many pooled connections are open and idle.
func (s *Redis) IdleConns() int { return int(s.rdb.PoolStats().IdleConns) }

package detections

import (
	"fmt"
	"regexp"
	"strings"
)

// PatternSet matches text against a list of case-insensitive patterns:
//
//   - "re:<expr>" is a regular expression (RE2 syntax), unanchored;
//   - a pattern containing '*' is a glob, '*' matching any run of bytes,
//     unanchored ("curl/*" matches anywhere in the text);
//   - anything else is a literal substring.
//
// Literals are matched together with one Aho-Corasick automaton, so the cost
// does not grow with the number of literals. A PatternSet is immutable and
// safe for concurrent use.
type PatternSet struct {
	patterns []string
	lits     *literalMatcher
	litIdx   []int // pattern index of each literal
	res      []*regexp.Regexp
	resIdx   []int
	any      bool // a bare "*": matches everything, including ""
}

// CompilePatterns compiles patterns, reporting every invalid one.
func CompilePatterns(patterns []string) (*PatternSet, error) {
	s := &PatternSet{patterns: patterns}
	var lits []string
	var bad []string
	for i, p := range patterns {
		switch {
		case p == "":
			bad = append(bad, `"" (empty pattern)`)
		case p == "*":
			s.any = true
		case strings.HasPrefix(p, "re:"):
			re, err := regexp.Compile("(?i)" + p[3:])
			if err != nil {
				bad = append(bad, fmt.Sprintf("%q (%v)", p, err))
				continue
			}
			s.res = append(s.res, re)
			s.resIdx = append(s.resIdx, i)
		case strings.Contains(p, "*"):
			parts := strings.Split(p, "*")
			for j := range parts {
				parts[j] = regexp.QuoteMeta(parts[j])
			}
			s.res = append(s.res, regexp.MustCompile("(?is)"+strings.Join(parts, ".*")))
			s.resIdx = append(s.resIdx, i)
		default:
			lits = append(lits, p)
			s.litIdx = append(s.litIdx, i)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("invalid patterns: %s", strings.Join(bad, ", "))
	}
	if len(lits) > 0 {
		s.lits = newLiteralMatcher(lits)
	}
	return s, nil
}

// MustCompilePatterns is CompilePatterns for patterns known at compile time.
func MustCompilePatterns(patterns []string) *PatternSet {
	s, err := CompilePatterns(patterns)
	if err != nil {
		panic(err)
	}
	return s
}

// Len returns the number of patterns.
func (s *PatternSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.patterns)
}

// MatchAll reports whether the set matches every input ("*").
func (s *PatternSet) MatchAll() bool { return s != nil && s.any }

// Match returns the first pattern that matches text, and whether one did.
// Literals are tried before regular expressions. It does not allocate.
func (s *PatternSet) Match(text string) (string, bool) {
	if s == nil {
		return "", false
	}
	if s.any {
		return "*", true
	}
	if s.lits != nil {
		if i := s.lits.find(text); i >= 0 {
			return s.patterns[s.litIdx[i]], true
		}
	}
	for i, re := range s.res {
		if re.MatchString(text) {
			return s.patterns[s.resIdx[i]], true
		}
	}
	return "", false
}

// literalMatcher is a case-insensitive (ASCII) Aho-Corasick automaton over
// bytes with a dense transition table.
type literalMatcher struct {
	next [][256]int32 // goto function completed with failure links
	out  []int32      // pattern index ending at a state (shortest), -1 if none
}

func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

func newLiteralMatcher(lits []string) *literalMatcher {
	m := &literalMatcher{next: make([][256]int32, 1), out: []int32{-1}}
	for i, l := range lits {
		st := int32(0)
		for j := 0; j < len(l); j++ {
			c := lowerByte(l[j])
			if m.next[st][c] == 0 {
				m.next = append(m.next, [256]int32{})
				m.out = append(m.out, -1)
				m.next[st][c] = int32(len(m.next) - 1)
			}
			st = m.next[st][c]
		}
		if m.out[st] < 0 {
			m.out[st] = int32(i)
		}
	}
	// Breadth-first construction of failure links, folded into the table.
	fail := make([]int32, len(m.next))
	queue := make([]int32, 0, len(m.next))
	for c := 0; c < 256; c++ {
		if s := m.next[0][c]; s != 0 {
			queue = append(queue, s)
		}
	}
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		if m.out[st] < 0 {
			m.out[st] = m.out[fail[st]]
		}
		for c := 0; c < 256; c++ {
			s := m.next[st][c]
			if s == 0 {
				m.next[st][c] = m.next[fail[st]][c]
				continue
			}
			fail[s] = m.next[fail[st]][c]
			queue = append(queue, s)
		}
	}
	// Upper-case bytes follow the lower-case transitions.
	for st := range m.next {
		for c := 'A'; c <= 'Z'; c++ {
			m.next[st][c] = m.next[st][c+'a'-'A']
		}
	}
	return m
}

// find returns the index of a literal occurring in text, or -1.
func (m *literalMatcher) find(text string) int {
	st := int32(0)
	for i := 0; i < len(text); i++ {
		st = m.next[st][text[i]]
		if o := m.out[st]; o >= 0 {
			return int(o)
		}
	}
	return -1
}

package payload

import (
	"bytes"
	"unsafe"
)

// Small byte helpers shared by the analyzers. They work on the normalised
// forms Input hands out, never allocate, and treat their input as ASCII
// (multi-byte UTF-8 sequences are never word bytes).

// str views b as a string for the duration of a call; the callee must not
// keep it.
func str(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

func isLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// hasAnyByte reports whether s contains any byte of set.
func hasAnyByte(s []byte, set string) bool {
	for _, c := range s {
		for i := 0; i < len(set); i++ {
			if c == set[i] {
				return true
			}
		}
	}
	return false
}

// byteSet is a 256-bit membership set.
type byteSet [4]uint64

func (s *byteSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// containsWord reports whether s contains w as a whole word (not preceded
// or followed by a word byte).
func containsWord(s []byte, w string) bool {
	for off := 0; ; {
		i := bytes.Index(s[off:], unsafe.Slice(unsafe.StringData(w), len(w)))
		if i < 0 {
			return false
		}
		i += off
		end := i + len(w)
		if (i == 0 || !isWordByte(s[i-1])) && (end == len(s) || !isWordByte(s[end])) {
			return true
		}
		off = i + 1
	}
}

// contains reports whether s contains sub.
func contains(s []byte, sub string) bool {
	return bytes.Contains(s, unsafe.Slice(unsafe.StringData(sub), len(sub)))
}

// index returns the index of sub in s, or -1.
func index(s []byte, sub string) int {
	return bytes.Index(s, unsafe.Slice(unsafe.StringData(sub), len(sub)))
}

// hasPrefix reports whether s starts with p.
func hasPrefix(s []byte, p string) bool {
	return len(s) >= len(p) && string(s[:len(p)]) == p
}

// skipSpace returns the index of the first non-space byte of s at or after
// i.
func skipSpace(s []byte, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// wordAt returns the word (run of word bytes) starting at i.
func wordAt(s []byte, i int) []byte {
	j := i
	for j < len(s) && isWordByte(s[j]) {
		j++
	}
	return s[i:j]
}

// equalLower reports whether the word w, lower-cased, equals lw (which is
// lower case).
func equalLower(w []byte, lw string) bool {
	if len(w) != len(lw) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lw[i] {
			return false
		}
	}
	return true
}

package payload

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// The maintained word lists the analyzers read, loaded once per process
// from the OWASP Core Rule Set's data files (Apache-2.0), which the Go
// module github.com/corazawaf/coraza-coreruleset/v4 embeds. They are never
// copied into this repository: upgrading the module upgrades the lists.
//
// The Core Rule Set matches these words anywhere in a value; here a word
// counts only in the context where it means an attack (a command name in a
// command position, a file name in a path, a class name in code), which is
// what keeps false positives low.
const (
	crsDir          = "@owasp_crs/"
	crsUnixShell    = "unix-shell.data"
	crsUnixBuiltins = "unix-shell-builtins.data"
	crsPowerShell   = "windows-powershell-commands.data"
	crsPHPFunctions = "php-function-names-933150.data"
	crsPHPVariables = "php-variables.data"
	crsJavaClasses  = "java-classes.data"
	crsRestricted   = "restricted-files.data"
	crsLFIFiles     = "lfi-os-files.data"
	crsUpload       = "restricted-upload.data"
	crsAIArtifacts  = "ai-critical-artifacts.data"
)

// vocabulary is the loaded word lists, shared read-only by every analyzer.
type vocabulary struct {
	// commands are the shell commands: the curated classes of commands
	// (cmdStrong, cmdWeak) plus every program of unix-shell.data and
	// unix-shell-builtins.data as cmdVocab.
	commands map[string]cmdClass
	// cmdlets are the PowerShell commands, lower case.
	cmdlets map[string]bool
	// phpFunctions are PHP functions that code injections call, lower
	// case: php-function-names-933150.data plus the code-execution ones.
	phpFunctions map[string]bool
	// phpVariables are the superglobals ("$_GET", "$GLOBALS"), as PHP
	// spells them (variable names are case-sensitive).
	phpVariables []string
	// javaClasses are Java packages and classes that only code names,
	// lower case ("java.lang.runtime", "org.apache.commons").
	javaClasses []vocabWord
	// urlFiles are files and folders a URL path must not name
	// (restricted-files.data, ai-critical-artifacts.data).
	urlFiles *fileSet
	// pathFiles are files and folders a path-valued parameter must not
	// name (lfi-os-files.data and restricted-files.data).
	pathFiles *fileSet
	// uploadNames are file names an upload must not carry
	// (restricted-upload.data).
	uploadNames *fileSet
}

// loadVocabulary reads the lists once; every New shares the result.
var loadVocabulary = sync.OnceValues(func() (*vocabulary, error) {
	return readVocabulary(coreruleset.FS)
})

func readVocabulary(fsys fs.FS) (*vocabulary, error) {
	var errs []error
	read := func(name string) []string {
		l, err := crsData(fsys, name)
		if err != nil {
			errs = append(errs, err)
		}
		return l
	}
	v := &vocabulary{commands: map[string]cmdClass{}, cmdlets: map[string]bool{}, phpFunctions: map[string]bool{}}
	for _, e := range append(read(crsUnixShell), read(crsUnixBuiltins)...) {
		// "bin/nc", "sbin/ip": the program is what follows the
		// directory. ${IFS}, dev/tcp and etc/passwd are the shell's
		// variables and files, read by the cmdi and traversal analyzers.
		name := e[strings.LastIndexByte(e, '/')+1:]
		if !strings.Contains(e, "bin/") && strings.Contains(e, "/") || !commandName(name) || httpMethodName(name) {
			continue
		}
		v.commands[strings.ToLower(name)] = cmdVocab
	}
	for w, c := range commands {
		v.commands[w] = c
	}
	for _, e := range read(crsPowerShell) {
		if strings.Contains(e, "-") {
			v.cmdlets[strings.ToLower(e)] = true
		}
	}
	// The risky cmdlets of modules the list leaves out (Defender's).
	for c := range powerShellRisky {
		v.cmdlets[c] = true
	}
	for _, e := range read(crsPHPFunctions) {
		v.phpFunctions[strings.ToLower(e)] = true
	}
	for _, f := range phpExecFunctions {
		v.phpFunctions[f] = true
	}
	for _, e := range read(crsPHPVariables) {
		// The list spells some names with zero-width spaces
		// ("$http_\u200bresponse_\u200bheader"); PHP does not.
		e = strings.ReplaceAll(e, "\u200b", "")
		if len(e) > 2 && e[0] == '$' {
			v.phpVariables = append(v.phpVariables, e)
		}
	}
	var classes []string
	for _, e := range read(crsJavaClasses) {
		if strings.Contains(e, ".") {
			classes = append(classes, strings.ToLower(e))
		}
	}
	v.javaClasses = newVocabWords(classes)
	restricted := read(crsRestricted)
	var served []string
	for _, e := range restricted {
		// Single-page applications fetch their settings as
		// "/config.json": a file sites serve to browsers on purpose.
		if !strings.EqualFold(strings.TrimLeft(e, "/"), "config.json") {
			served = append(served, e)
		}
	}
	v.urlFiles = newFileSet(append(served, read(crsAIArtifacts)...))
	v.pathFiles = newFileSet(append(read(crsLFIFiles), restricted...))
	v.uploadNames = newFileSet(read(crsUpload))
	for _, l := range []struct {
		name string
		n    int
	}{{crsUnixShell, len(v.commands)}, {crsPowerShell, len(v.cmdlets)}, {crsPHPVariables, len(v.phpVariables)},
		{crsJavaClasses, len(v.javaClasses)}, {crsRestricted, v.urlFiles.len()}, {crsLFIFiles, v.pathFiles.len()}, {crsUpload, v.uploadNames.len()}} {
		if l.n == 0 {
			errs = append(errs, fmt.Errorf("payload: %s holds no usable entry", l.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return v, nil
}

// crsData returns the entries of a CRS data file: one per line, comments
// ('#') and blank lines left out.
func crsData(fsys fs.FS, name string) ([]string, error) {
	b, err := fs.ReadFile(fsys, crsDir+name)
	if err != nil {
		return nil, fmt.Errorf("payload: reading the Core Rule Set's %s: %w", name, err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// httpMethodName reports the list's lwp-request aliases GET, HEAD and
// POST: request lines are everywhere in batch bodies and telemetry, and
// the crlf analyzer reads them.
func httpMethodName(s string) bool {
	switch strings.ToLower(s) {
	case "get", "head", "post", "put", "delete", "patch", "options":
		return true
	}
	return false
}

// commandName reports a program name that can stand as a command word: at
// least three characters (two-letter names such as "as", "at" and "w" are
// words of prose), letters, digits and "._+-", not ending in a separator
// (the list's "docker-" and "sudo_" are prefixes).
func commandName(s string) bool {
	if len(s) < 3 || len(s) > 24 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isWordByte(c) && c != '.' && c != '+' && c != '-' {
			return false
		}
	}
	last := s[len(s)-1]
	return last != '-' && last != '_' && last != '.'
}

// fileSet matches file and folder names at the segment boundaries of a
// canonical path (lower case, '/' separators; see Input.Path).
type fileSet struct {
	// byPrefix indexes the entries by their first four bytes (three for
	// the entries of three), so a path segment costs two lookups and
	// rarely a comparison.
	byPrefix map[[4]byte][]string
	// suffixes are the entries that are extensions (".sql.gz"): they end
	// a segment rather than start one.
	suffixes []string
	n        int
}

func newFileSet(entries []string) *fileSet {
	s := &fileSet{byPrefix: map[[4]byte][]string{}}
	seen := map[string]bool{}
	for _, e := range entries {
		// A leading '/' anchors the entry to a segment start, which every
		// entry is here; a Windows '\' is a '/' in canonical paths.
		e = strings.TrimLeft(strings.ToLower(strings.ReplaceAll(e, `\`, "/")), "/")
		if len(e) < 3 || seen[e] {
			continue
		}
		seen[e] = true
		if strings.HasPrefix(e, ".sql.") {
			s.suffixes = append(s.suffixes, e)
			s.n++
			continue
		}
		k := [4]byte{e[0], e[1], e[2]}
		if len(e) >= 4 {
			k[3] = e[3]
		}
		s.byPrefix[k] = append(s.byPrefix[k], e)
		s.n++
	}
	return s
}

func (s *fileSet) len() int { return s.n }

// matchAt returns the entry of key k that p names at i.
func (s *fileSet) matchAt(p []byte, i int, k [4]byte) (string, bool) {
	for _, e := range s.byPrefix[k] {
		if !hasPrefix(p[i:], e) {
			continue
		}
		end := i + len(e)
		last := e[len(e)-1]
		if end < len(p) && isAlnum(p[end]) && isAlnum(last) {
			continue
		}
		return e, true
	}
	return "", false
}

// match returns the first entry named in p: starting at a segment (at the
// start or after '/' or ':') and ending at a name boundary (the end, a
// separator, or any byte but a letter or digit), unless the entry itself
// ends in a separator ("etc/", ".bash_").
func (s *fileSet) match(p []byte) (string, bool) {
	for i := 0; i+2 < len(p); i++ {
		if i > 0 && p[i-1] != '/' && p[i-1] != ':' {
			continue
		}
		k := [4]byte{p[i], p[i+1], p[i+2]}
		if e, ok := s.matchAt(p, i, k); ok {
			return e, true
		}
		if i+3 < len(p) {
			k[3] = p[i+3]
			if e, ok := s.matchAt(p, i, k); ok {
				return e, true
			}
		}
	}
	for _, e := range s.suffixes {
		for off := 0; ; {
			i := index(p[off:], e)
			if i < 0 {
				break
			}
			i += off
			if end := i + len(e); i > 0 && (end == len(p) || p[end] == '/') {
				return e, true
			}
			off = i + 1
		}
	}
	return "", false
}

// words returns the loaded vocabulary. New loads it first and fails when it
// cannot, so in a running detection it is always there.
func words() *vocabulary {
	v, _ := loadVocabulary()
	if v == nil {
		return &emptyVocabulary
	}
	return v
}

// emptyVocabulary stands in when loading failed, so that a misuse (an
// analyzer called outside a Detection) finds empty lists, not nil.
var emptyVocabulary = vocabulary{urlFiles: newFileSet(nil), pathFiles: newFileSet(nil), uploadNames: newFileSet(nil)}

// vocabWord is a word with its byte classes (letters and symbols, see
// classes.go): a value that lacks one of them cannot hold the word, which
// one mask test tells. Blanks are left out of the mask, since folding
// turns every blank into a space.
type vocabWord struct {
	w       string
	letters uint64
	grams   gramSet // the word's byte pairs (see Input.grams)
}

func newVocabWords(ws []string) []vocabWord {
	out := make([]vocabWord, len(ws))
	for i, w := range ws {
		out[i] = vocabWord{w: w, letters: wordClasses(w), grams: gramsOf([]byte(w))}
	}
	return out
}

// gramSet is a 256-bit set of hashed byte pairs: a text that lacks one pair
// of a word cannot hold the word. For a value of a hundred bytes a word of
// five letters passes by chance about once in a hundred, so one set per
// value spares the search for most words of a vocabulary.
type gramSet [4]uint64

func gramHash(a, b byte) uint32 { return (uint32(a)*0x9E3779B1 ^ uint32(b)*0x85EBCA77) >> 24 }

func gramsOf(b []byte) gramSet {
	var g gramSet
	for i := 0; i+1 < len(b); i++ {
		h := gramHash(b[i], b[i+1])
		g[h>>6] |= 1 << (h & 63)
	}
	return g
}

// covers reports whether g holds every pair of w.
func (g *gramSet) covers(w *gramSet) bool {
	return g[0]&w[0] == w[0] && g[1]&w[1] == w[1] && g[2]&w[2] == w[2] && g[3]&w[3] == w[3]
}

// mayContain reports whether in's folded value may contain w: its classes
// and byte pairs are all there. A false answer is certain; a true one
// still needs the search.
func (in *Input) mayContain(w *vocabWord) bool {
	return in.foldedClasses()&w.letters == w.letters && in.grams().covers(&w.grams)
}

// wordClasses returns the classes a value must hold to contain w once
// folded.
func wordClasses(w string) uint64 {
	return byteClasses([]byte(w)) &^ (clsSpace | clsTab | clsNewline | clsControl | clsHigh | clsUpper)
}

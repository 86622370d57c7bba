package crs

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
)

// rootFS is the file system the SecLang parser reads from: the Core Rule
// Set embedded in the coraza-coreruleset module for names under
// "@owasp_crs/" and for its two "@..." setup files, the operator's own
// files from the OS for everything else.
//
// Like Coraza's own OS file system it takes names as the parser builds
// them (absolute, or relative to the working directory), not the unrooted
// names io/fs prescribes: the operator's paths are OS paths.
//
// override replaces the content of some files; the diagnosis of a broken
// rule file uses it to parse a prefix of the file in its own directory, so
// relative Include and @pmFromFile paths resolve as they do in the file.
type rootFS struct {
	override map[string][]byte
}

// crsFiles are the top-level files of the embedded rule set.
var crsFiles = []string{"@crs-setup.conf.example", "@coraza.conf-recommended"}

// embedded maps a parser name to the name in the embedded rule set. The
// parser joins an Include to the including file's directory, so an
// operator file that includes "@owasp_crs/REQUEST-942-…" asks for
// "/etc/rampart/@owasp_crs/REQUEST-942-…"; that still means the CRS file.
func embedded(name string) (string, bool) {
	if i := strings.Index(name, "@owasp_crs/"); i == 0 || i > 0 && name[i-1] == '/' {
		return name[i:], true
	}
	base := name[strings.LastIndexByte(name, '/')+1:]
	for _, f := range crsFiles {
		if base == f {
			return f, true
		}
	}
	return "", false
}

// Open implements fs.FS.
func (r rootFS) Open(name string) (fs.File, error) {
	if n, ok := embedded(name); ok {
		return coreruleset.FS.Open(n)
	}
	return os.Open(name)
}

// ReadFile implements fs.ReadFileFS, which the parser uses for rule and
// data files.
func (r rootFS) ReadFile(name string) ([]byte, error) {
	if b, ok := r.override[name]; ok {
		return b, nil
	}
	if n, ok := embedded(name); ok {
		return fs.ReadFile(coreruleset.FS, n)
	}
	return os.ReadFile(name)
}

// Glob implements fs.GlobFS, which the parser uses for an Include with a
// '*'.
func (r rootFS) Glob(pattern string) ([]string, error) {
	if n, ok := embedded(pattern); ok {
		return fs.Glob(coreruleset.FS, n)
	}
	return filepath.Glob(pattern)
}

var (
	_ fs.ReadFileFS = rootFS{}
	_ fs.GlobFS     = rootFS{}
)

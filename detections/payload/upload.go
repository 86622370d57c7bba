package payload

import (
	"bytes"
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// RuleUploadScript is an upload whose file name the server would run or
// obey: a server-side script extension as the last one ("shell.php",
// "x.jsp", "a.aspx", "cmd.phtml", with the trailing dots, spaces, NUL
// bytes and NTFS stream names that servers strip), or a file the Core Rule
// Set's restricted-upload.data names (".htaccess", ".user.ini",
// "web.config"). "report.php.txt" is a text file.
const RuleUploadScript = "upload_script"

// uploadAnalyzer reads the file names of multipart parts and of the
// X-Filename headers some upload APIs use.
type uploadAnalyzer struct{}

func (uploadAnalyzer) Name() string { return "upload" }

func (uploadAnalyzer) needs() uint64 { return clsDot }

// scriptExtensions are run by a web server or an application server.
var scriptExtensions = set(
	"php", "php2", "php3", "php4", "php5", "php6", "php7", "php8", "phtml", "pht", "phtm", "phar", "phps",
	"shtml", "shtm", "stm", "asp", "aspx", "asa", "asax", "ascx", "ashx", "asmx", "axd", "cer", "cdx",
	"jsp", "jspx", "jspf", "jsw", "jsv", "jhtml", "war", "cfm", "cfml", "cfc", "cgi", "pl", "htaccess",
)

func (uploadAnalyzer) Analyze(in *Input) (Finding, bool) {
	f := in.Field
	switch {
	case f.Kind == detections.FieldMultipart && !f.IsKey && strings.HasSuffix(f.Name, ".filename"):
	case f.Kind == detections.FieldHeader && uploadHeader(f.Name):
	default:
		return Finding{}, false
	}
	d := in.Decoded()
	// The last path segment, as servers save it ("../x/shell.php").
	if i := bytes.LastIndexAny(d, `/\`); i >= 0 {
		d = d[i+1:]
	}
	// A NUL ends the name for C code; NTFS drops "::$DATA" streams and
	// trailing dots and blanks.
	if i := bytes.IndexByte(d, 0); i >= 0 {
		d = d[:i]
	}
	if i := bytes.Index(d, []byte("::")); i >= 0 {
		d = d[:i]
	}
	d = bytes.TrimRight(d, ". \t")
	if len(d) < 2 {
		return Finding{}, false
	}
	var buf [256]byte
	if len(d) > len(buf) {
		d = d[len(d)-len(buf):]
	}
	lower := buf[:len(d)]
	for i, c := range d {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if _, ok := words().uploadNames.match(lower); ok {
		return Finding{Rule: RuleUploadScript, Score: ScoreCritical}, true
	}
	dot := bytes.LastIndexByte(lower, '.')
	if dot < 0 || !scriptExtensions[str(lower[dot+1:])] {
		return Finding{}, false
	}
	return Finding{Rule: RuleUploadScript, Score: ScoreCritical}, true
}

// uploadHeader reports the headers that carry an upload's file name.
func uploadHeader(name string) bool {
	switch name {
	case "X-Filename", "X_filename", "X-File-Name", "X.filename":
		return true
	}
	return false
}

var _ Analyzer = uploadAnalyzer{}

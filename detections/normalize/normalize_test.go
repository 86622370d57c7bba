package normalize_test

import (
	"strings"
	"testing"

	"github.com/rampartgw/rampart/detections/normalize"
)

var decodeTests = []struct {
	name, in string
	plus     bool
	want     string
}{
	{"clean input is returned as is", "hello-world_42", false, "hello-world_42"},
	{"percent escapes", "%3Cscript%3E", false, "<script>"},
	{"plus is a space in queries", "a+b", true, "a b"},
	{"plus is a plus in paths", "a+b", false, "a+b"},
	{"double encoding", "%252e%252e%252f", false, "../"},
	{"triple encoding", "%25252e", false, "."},
	{"split nibbles", "..%%32%%66etc", false, "../etc"},
	{"json escapes wrapping url escapes", `\u0025\u0033\u0063script`, false, "<script"},
	{"entities inside url escapes", "%26lt%3Bscript%26gt%3B", false, "<script>"},
	{"%u escapes", "%u003cscript%u003e", false, "<script>"},
	{"fullwidth %u stays fullwidth", "%uff0e", false, "．"},
	{"invalid escapes are kept", "%zz%4", false, "%zz%4"},
	{"trailing escape", "a%41", false, "aA"},
	{"html named references", "&lt;img&gt; &quot;x&quot; &amp;", false, `<img> "x" &`},
	{"html numeric references", "&#60;&#x3C;&#0000060;&#x3c", false, "<<<<"},
	{"html references without semicolon", "&lt;b", false, "<b"},
	{"xml apos", "&apos;", false, "'"},
	{"unknown entity kept", "&copy; &foo;", false, "&copy; &foo;"},
	{"js unicode escape", `\u003cscript\u003e`, false, "<script>"},
	{"js code point escape", `\u{3c}svg`, false, "<svg"},
	{"js hex escape", `\x3cimg`, false, "<img"},
	{"windows path keeps backslashes", `C:\Users\alice`, false, `C:\Users\alice`},
	{"overlong dot", "%c0%ae%c0%ae%c0%af", false, "../"},
	{"overlong three bytes", "%e0%80%ae", false, "."},
	{"overlong five bytes", "%f8%80%80%80%ae", false, "."},
	{"overlong six bytes", "%fc%80%80%80%80%ae", false, "."},
	{"overlong backslash", "%c1%9c", false, `\`},
	{"overlong letters are left alone", "%c1%af", false, "\xc1\xaf"},
	{"entity then url escape", "&#37;3c", false, "<"},
	{"url escape of an entity", "%26lt%3B", false, "<"},
	{"utf-8 text untouched", "caf%C3%A9 ü", false, "café ü"},
}

func TestDecode(t *testing.T) {
	t.Parallel()
	for _, tc := range decodeTests {
		t.Run(tc.name, func(t *testing.T) {
			var b normalize.Buffer
			if got := string(b.Decode(tc.in, tc.plus)); got != tc.want {
				t.Errorf("Decode(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodeBounds(t *testing.T) {
	t.Parallel()
	var b normalize.Buffer
	// Every pass peels one level; MaxPasses rounds of MaxPasses URL passes
	// bound the work on "%25252525...".
	deep := "%" + strings.Repeat("25", 40) + "41"
	if got := b.Decode(deep, false); len(got) == 1 {
		t.Errorf("decoded %d levels, want a bounded number", 40)
	}
	huge := strings.Repeat("%41", normalize.MaxInput)
	if got := b.Decode(huge, false); len(got) > normalize.MaxInput {
		t.Errorf("decoded %d bytes, more than MaxInput", len(got))
	}
}

func TestFold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"lower case", "SeLeCt", "select"},
		{"whitespace collapsed", "a \t\n\r b", "a b"},
		{"control bytes removed", "sel\x00ect", "select"},
		{"fullwidth folded", "ＳＥＬＥＣＴ＜", "select<"},
		{"unicode spaces", "a\u00a0\u2003b", "a b"},
		{"unicode lower", "ÉCOLE", "école"},
		{"invalid utf-8 kept", "a\xffb", "a\xffb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b normalize.Buffer
			if got := string(b.Fold([]byte(tc.in))); got != tc.want {
				t.Errorf("Fold(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestSQL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"block comments become spaces", "union/**/select", "union select"},
		{"executable comments keep their content", "/*!50000union*/ /*!select*/", "union select"},
		{"line comment dropped", "1 or 1=1 -- x", "1 or 1=1"},
		{"unterminated comment", "a /* b", "a"},
		{"spaces collapsed", "a   b", "a b"},
		{"dashes in words kept", "trade-in", "trade-in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b normalize.Buffer
			if got := string(b.SQL([]byte(tc.in))); got != tc.want {
				t.Errorf("SQL(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"backslashes", `..\..\Windows\win.ini`, "../../windows/win.ini"},
		{"separators collapse", "a//b///c", "a/b/c"},
		{"hex spellings", "0x2e0x2e0x2fetc0x5cpasswd", "../etc/passwd"},
		{"unicode slashes", "..\u2215..\u2216etc", "../../etc"},
		{"fullwidth dots", "\uff0e\uff0e/", "../"},
		{"nul ends the segment", "../etc/passwd\x00.png", "../etc/passwd/.png"},
		{"invalid escape is a separator", "..%qfetc", "../etc"},
		{"orphan lead byte is a separator", "..\xc0etc", "../etc"},
		{"private use is a separator", "..\uf025etc", "../etc"},
		{"letters kept", "Café/Menu", "café/menu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b normalize.Buffer
			if got := string(b.Path([]byte(tc.in))); got != tc.want {
				t.Errorf("Path(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestBase64(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"text", "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "<script>alert(1)</script>"},
		{"unpadded url-safe", "Li4vLi4vZXRjL3Bhc3N3ZA", "../../etc/passwd"},
		{"too short", "YWJj", ""},
		{"binary decodes to nothing", "8f14e45fceea167a5a36dedd4bea2543", ""},
		{"uuid", "4035487b-f17c-47da-b417-d4b94043d7fe", ""},
		{"words", "HelloWorldThisIsNotBase64", ""},
		{"mixed alphabets", "ab+c-def/ghij_klmn", ""},
		{"bad padding", "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0P===", ""},
		{"jwt is not one value", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b normalize.Buffer
			if got := string(b.Base64([]byte(tc.in))); got != tc.want {
				t.Errorf("Base64(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDecodersReportChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fn   func(dst, src []byte) ([]byte, bool)
		in   string
		want bool
	}{
		{"url changed", func(d, s []byte) ([]byte, bool) { return normalize.URLDecode(d, s, false) }, "%41", true},
		{"url unchanged", func(d, s []byte) ([]byte, bool) { return normalize.URLDecode(d, s, false) }, "abc", false},
		{"html changed", normalize.HTMLUnescape, "&lt;", true},
		{"html unchanged", normalize.HTMLUnescape, "a&b", false},
		{"js changed", normalize.JSUnescape, `\x41`, true},
		{"js unchanged", normalize.JSUnescape, `\n\t`, false},
		{"overlong changed", normalize.FixOverlong, "\xc0\xae", true},
		{"overlong unchanged", normalize.FixOverlong, "é", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := tc.fn(nil, []byte(tc.in)); got != tc.want {
				t.Errorf("changed = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestZeroAllocs checks that the pipeline works in its buffers once they
// have grown.
func TestZeroAllocs(t *testing.T) {
	var b normalize.Buffer
	in := "%253Cscript%253E&lt;&#x3c;\\u003c %c0%ae ＳＥＬＥＣＴ /**/ ..\\..\\etc"
	b64 := []byte("PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==")
	run := func() {
		d := b.Decode(in, true)
		f := b.Fold(d)
		b.SQL(f)
		b.Path(d)
		b.Base64(b64)
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

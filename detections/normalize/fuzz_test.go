package normalize_test

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"github.com/rampartgw/rampart/detections/normalize"
)

// seeds are the unit-table inputs plus a few hostile shapes.
func seeds(f *testing.F) {
	for _, tc := range decodeTests {
		f.Add(tc.in)
	}
	for _, s := range []string{
		"", "%", "%%", "%u", "%u12", "&", "&#", "&#x", "&#99999999999;", `\`, `\u{`, `\u{110000}`, `\x`,
		"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xfc\x80\x80\x80\x80", "/*!", "/*", "*/", "--", "0x", "0x2",
		"%252525252525252541", "&amp;amp;amp;lt;", `\\u005cu003c`, "PHN2Zz4=", "..%c0%af..%c1%9c",
		"..%%32%%66etc", "%2%f", "%%%", "%2%", "..2fetc2fpasswd", "..5c..5cwin.ini", "boot.ini\x00.htm", "’ or ‘1’=’1",
		`\u0025\u0033\u0063`, "%26lt%3B",
	} {
		f.Add(s)
	}
}

func FuzzDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		var b normalize.Buffer
		for _, plus := range []bool{false, true} {
			out := b.Decode(s, plus)
			if len(out) > len(s) {
				t.Fatalf("Decode(%q) grew to %d bytes", s, len(out))
			}
			if !normalize.NeedsDecode(s, plus) && string(out) != s {
				t.Fatalf("Decode(%q) changed clean input to %q", s, out)
			}
		}
	})
}

func FuzzURLDecode(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := normalize.URLDecode(nil, []byte(s), true)
		if !changed && string(out) != s {
			t.Fatalf("unchanged but %q != %q", out, s)
		}
		if len(out) > len(s) {
			t.Fatalf("grew: %q -> %q", s, out)
		}
	})
}

func FuzzHTMLUnescape(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := normalize.HTMLUnescape(nil, []byte(s))
		if !changed && string(out) != s {
			t.Fatalf("unchanged but %q != %q", out, s)
		}
		if len(out) > len(s) {
			t.Fatalf("grew: %q -> %q", s, out)
		}
	})
}

func FuzzJSUnescape(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := normalize.JSUnescape(nil, []byte(s))
		if !changed && string(out) != s {
			t.Fatalf("unchanged but %q != %q", out, s)
		}
		if len(out) > len(s) {
			t.Fatalf("grew: %q -> %q", s, out)
		}
	})
}

func FuzzFixOverlong(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		out, changed := normalize.FixOverlong(nil, []byte(s))
		if !changed && string(out) != s {
			t.Fatalf("unchanged but %q != %q", out, s)
		}
		if len(out) > len(s) {
			t.Fatalf("grew: %q -> %q", s, out)
		}
		if utf8.ValidString(s) && changed {
			t.Fatalf("valid UTF-8 %q changed to %q", s, out)
		}
	})
}

func FuzzFold(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		var b normalize.Buffer
		out := b.Fold([]byte(s))
		for i, c := range out {
			if 'A' <= c && c <= 'Z' || c < 0x20 && c != ' ' || c == 0x7f {
				t.Fatalf("Fold(%q) = %q: byte %d is %q", s, out, i, c)
			}
		}
		if bytes.Contains(out, []byte("  ")) {
			t.Fatalf("Fold(%q) = %q: double space", s, out)
		}
	})
}

func FuzzSQL(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		var b normalize.Buffer
		folded := b.Fold([]byte(s))
		out := b.SQL(folded)
		if len(out) > len(folded)+1 {
			t.Fatalf("SQL(%q) grew to %q", folded, out)
		}
	})
}

func FuzzPath(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		var b normalize.Buffer
		out := b.Path(b.Decode(s, false))
		if bytes.Contains(out, []byte("//")) || bytes.IndexByte(out, '\\') >= 0 {
			t.Fatalf("Path(%q) = %q: separators not canonical", s, out)
		}
		for _, c := range out {
			if 'A' <= c && c <= 'Z' || c < 0x20 {
				t.Fatalf("Path(%q) = %q: byte %q", s, out, c)
			}
		}
	})
}

func FuzzBase64(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		var b normalize.Buffer
		out := b.Base64([]byte(s))
		if out != nil && (!utf8.Valid(out) || len(out) > len(s)) {
			t.Fatalf("Base64(%q) = %q: not text", s, out)
		}
	})
}

package payload

import (
	"bytes"

	"github.com/rampartgw/rampart/detections"
	"github.com/rampartgw/rampart/detections/normalize"
)

// The XSS readings of spellings that libinjection's tokenizer does not
// undo: CSS comments and escapes inside style values, UTF-7, computed and
// indirect calls of script sinks, markup that loads code through a
// dangerous element, and the probes for a decoding layer.

// xssEvasions runs the checks above on the folded value f.
func xssEvasions(in *Input, f []byte) (Finding, bool) {
	if xssProbe(in) {
		return Finding{Rule: RuleXSSProbe, Score: ScoreCritical}, true
	}
	if in.Has(clsLT) && (dangerousElement(f) || contains(f, "<?import") && contains(f, "implementation=")) {
		return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
	}
	if in.Has(clsParen|clsQuote) && (in.Has(clsStar|clsBackslash) || in.mayContain(&cssExpression)) && cssScript(f) {
		return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
	}
	if in.Has(clsPlus|clsDash) && contains(f, "+ad") {
		// UTF-7 is case-sensitive: decode the decoded (not folded) form.
		if d := utf7Markup(in.Decoded()); d != nil {
			var buf normalize.Buffer
			if g := buf.Fold(d); markupRunsScript(g) || scriptURL(g) {
				return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
			}
		}
	}
	if in.Has(clsBracket) && contains(f, "<![cdata[") {
		// "<![CDATA[<]]>script<![CDATA[>]]>": markup split by CDATA
		// sections, which an XML parser joins.
		var buf [maxCSS]byte
		if c := stripCDATA(buf[:0], f[:min(len(f), maxCSS)]); markupRunsScript(c) {
			return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
		}
	}
	if in.Has(clsEq) && svgEventAnimation(f) {
		return Finding{Rule: RuleXSS, Score: ScoreCritical}, true
	}
	if in.Has(clsParen|clsQuote|clsBracket) && indirectSink(in, f) {
		return Finding{Rule: RuleXSSScript, Score: ScoreCritical}, true
	}
	return Finding{}, false
}

// xssProbe reports a value that decodes to a lone '<' or '>' but arrived
// escaped beyond the layer the application itself decodes: an entity, a
// JavaScript escape, or a second URL encoding.
func xssProbe(in *Input) bool {
	d := bytes.TrimSpace(in.Decoded())
	if len(d) != 1 || d[0] != '<' && d[0] != '>' {
		return false
	}
	v := in.Field.Value
	if (in.Field.URLEncoded || in.Field.Kind == detections.FieldCookie) && len(v) == 3 && v[0] == '%' {
		return false // "%3C" in an URL or a cookie is how a browser sends "<"
	}
	return len(bytes.TrimSpace([]byte(v))) > 1
}

// dangerousElement reports an element that loads or runs code from an
// attribute: "<iframe src=", "<object data=", "<embed src=",
// "<layer src=", "<base href=", "<link ... href=" with rel=import.
//
// The attributes of such an element are read up to its '>', or up to the
// next such element when the tag is not closed before it: that element's
// attributes run on to the same '>', so each byte is read for one element
// only and the work stays linear however many unclosed tags there are.
func dangerousElement(f []byte) bool {
	const (
		none = iota
		loader
		style
	)
	kind, attrs := none, 0 // the open element and where its attributes start
	done := func(end int, closed bool) bool {
		tag := f[attrs:end]
		switch kind {
		case style:
			// <style type="text/javascript">: script in Netscape's JSSS.
			return closed && contains(tag, "javascript")
		case loader:
			// An attribute that names what to load, with a value.
			for _, a := range [...]string{"src", "data", "href", "code", "codebase", "action", "movie"} {
				if attrValue(tag, a) {
					return true
				}
			}
		}
		return false
	}
	for i := 0; i < len(f); i++ {
		switch f[i] {
		case '>':
			if kind != none {
				if done(i, true) {
					return true
				}
				kind = none
			}
			continue
		case '<':
		default:
			continue
		}
		j := i + 1
		k := j
		for k < len(f) && isLetter(f[k]) {
			k++
		}
		next := none
		switch str(f[j:k]) {
		case "iframe", "frame", "object", "embed", "applet", "layer", "ilayer", "base", "bgsound", "portal", "isindex":
			next = loader
		case "style":
			next = style
		case "link":
			if contains(f[k:min(len(f), k+128)], "import") {
				next = loader
			}
		}
		if next == none {
			i = k - 1
			continue
		}
		if kind != none && done(i, false) {
			return true
		}
		kind, attrs = next, k
		i = k - 1
	}
	return kind != none && done(len(f), false)
}

// attrValue reports the attribute name=value in a tag's attribute text.
func attrValue(tag []byte, name string) bool {
	for off := 0; ; {
		i := index(tag[off:], name)
		if i < 0 {
			return false
		}
		i += off
		off = i + 1
		if i > 0 && isWordByte(tag[i-1]) {
			continue
		}
		j := skipSpace(tag, i+len(name))
		if j < len(tag) && tag[j] == '=' {
			return true
		}
	}
}

var cssExpression = newVocabWords([]string{"expression"})[0]

// maxCSS bounds the bytes of a value that CSS normalisation reads.
const maxCSS = 2048

// cssScript reports script in CSS once comments ("expr/**/ession") and
// escapes ("\0065xpression", "\ja\vasc\ript") are undone: an
// expression(), a script URL, a behavior or binding.
func cssScript(f []byte) bool {
	if !contains(f, "/*") && bytes.IndexByte(f, '\\') < 0 && !contains(f, "expression") {
		return false
	}
	var buf [maxCSS]byte
	c := cssNormal(buf[:0], f[:min(len(f), maxCSS)])
	for off := 0; ; {
		i := index(c[off:], "expression(")
		if i < 0 {
			break
		}
		i += off
		off = i + 1
		b := i - 1
		for b >= 0 && c[b] == ' ' {
			b--
		}
		if b >= 0 && (c[b] == ':' || c[b] == '=') {
			return true
		}
	}
	return scriptURL(c) || contains(c, "behavior:") || contains(c, "-moz-binding") || contains(c, "@importjavascript:") ||
		contains(c, "@import'javascript:") || contains(c, "@import\"javascript:") || contains(c, "url(javascript:")
}

// cssNormal appends f to dst with CSS comments removed and CSS escapes
// decoded: "\" and one to six hex digits (and one blank after them) is
// that code point, "\" before another character is that character.
func cssNormal(dst, f []byte) []byte {
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '/' && i+1 < len(f) && f[i+1] == '*':
			end := index(f[i+2:], "*/")
			if end < 0 {
				return dst
			}
			i += end + 3
		case c == '\\' && i+1 < len(f):
			j := i + 1
			var v rune
			for j < len(f) && j-i <= 6 && isHexDigit(f[j]) {
				h, _ := normalize.Unhex(f[j])
				v = v<<4 | rune(h)
				j++
			}
			if j > i+1 {
				if v < 0x80 && v > 0 {
					c := byte(v)
					if 'A' <= c && c <= 'Z' {
						c += 'a' - 'A'
					}
					dst = append(dst, c)
				}
				if j < len(f) && f[j] == ' ' {
					j++
				}
				i = j - 1
				continue
			}
			dst = append(dst, f[i+1])
			i++
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// utf7Markup decodes the UTF-7 runs of f ("+ADw-script+AD4-") when they
// spell ASCII; nil when there is none. Only the runs that decode to ASCII
// markup are replaced, so "+49-" stays.
func utf7Markup(f []byte) []byte {
	var out []byte
	changed := false
	for i := 0; i < len(f); i++ {
		if f[i] != '+' {
			out = append(out, f[i])
			continue
		}
		// The run, read no further than one byte past the longest one
		// decoded (64): a longer run is left as it is, and reading it
		// whole from each of its '+' ("+ad+ad+ad...") is quadratic.
		j := i + 1
		for j < len(f) && j-i <= 65 && (isAlnum(f[j]) || f[j] == '/' || f[j] == '+') {
			j++
		}
		run := f[i+1 : j]
		if len(run) < 3 || len(run) > 64 {
			out = append(out, f[i])
			continue
		}
		dec, ok := utf7Run(run)
		if !ok {
			out = append(out, f[i])
			continue
		}
		out = append(out, dec...)
		changed = true
		i = j - 1
		if j < len(f) && f[j] == '-' {
			i = j
		}
	}
	if !changed {
		return nil
	}
	return out
}

// utf7Run decodes one UTF-7 base64 run into ASCII bytes.
func utf7Run(run []byte) ([]byte, bool) {
	var bits uint32
	n := 0
	var out []byte
	for _, c := range run {
		v, ok := b64Value(c)
		if !ok {
			return nil, false
		}
		bits = bits<<6 | uint32(v)
		n += 6
		if n >= 16 {
			u := bits >> (n - 16) & 0xffff
			n -= 16
			if u == 0 || u >= 0x80 {
				return nil, false
			}
			out = append(out, byte(u))
		}
	}
	return out, len(out) > 0
}

// b64Value returns the value of a base64 character.
func b64Value(c byte) (byte, bool) {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A', true
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26, true
	case '0' <= c && c <= '9':
		return c - '0' + 52, true
	case c == '+':
		return 62, true
	case c == '/':
		return 63, true
	}
	return 0, false
}

// svgEventAnimation reports an SVG animation that sets an event handler
// attribute: <set attributeName="onmouseover" to="alert(1)">.
func svgEventAnimation(f []byte) bool {
	i := index(f, "attributename")
	if i < 0 {
		return false
	}
	j := skipSpace(f, i+len("attributename"))
	if j >= len(f) || f[j] != '=' {
		return false
	}
	j = skipSpace(f, j+1)
	for j < len(f) && (f[j] == '"' || f[j] == '\'') {
		j++
	}
	return hasPrefix(f[j:], "on") && j+4 < len(f) && isLetter(f[j+2])
}

// indirectSink reports a sink reached without writing its call plainly:
// a computed member of the global object called ("top['al'+'ert'](1)",
// "window[/alert/.source](1)"), a sink passed as a callback or assigned
// ("[1].find(alert)", "a=alert,a(1)"), a sink called as a tagged template
// ("alert`1`"), a Netscape JavaScript entity ("&{alert(1)}"), or a sink
// call that stands as a statement after a breakout ("}alert(1);{//",
// "x;alert(1)//").
func indirectSink(in *Input, f []byte) bool {
	have := in.foldedClasses()
	for k := range globalObjects {
		g := &globalObjects[k]
		if have&clsBracket == 0 || !in.mayContain(g) {
			continue
		}
		for off := 0; ; {
			i := index(f[off:], g.w)
			if i < 0 {
				break
			}
			i += off
			off = i + 1
			if i > 0 && (isWordByte(f[i-1]) || f[i-1] == '.') {
				continue
			}
			end := bytes.IndexByte(f[i:min(len(f), i+128)], ']')
			if end < 0 {
				continue
			}
			k := skipSpace(f, i+end+1)
			if k < len(f) && (f[k] == '(' || f[k] == '`') {
				return true
			}
		}
	}
	for k := range directSinks {
		sw := &directSinks[k]
		if !in.mayContain(sw) {
			continue
		}
		s := sw.w
		for off := 0; ; {
			i := index(f[off:], s)
			if i < 0 {
				break
			}
			i += off
			off = i + len(s)
			if i > 0 && (isWordByte(f[i-1]) || f[i-1] == '.') {
				continue
			}
			end := i + len(s)
			if end < len(f) && isWordByte(f[end]) {
				continue
			}
			b := i - 1
			for b >= 0 && f[b] == ' ' {
				b--
			}
			var before byte
			if b >= 0 {
				before = f[b]
			}
			k := skipSpace(f, end)
			var after byte
			if k < len(f) {
				after = f[k]
			}
			switch {
			case after == '`' && bytes.IndexByte(f[k+1:], '`') >= 0:
				return true // alert`1`
			case (before == '(' || before == '=' || before == ',') && (after == ')' || after == ',' || after == ';'):
				return true // find(alert), a=alert,
			case before == '{' && b > 0 && f[b-1] == '&' && after == '(':
				return true // &{alert(1)}
			case after == '(' && (b < 0 || before == ';' || before == '}' || before == ')' || before == '?' || before == '=' || before == '>'):
				if sinkStatement(f, k) {
					return true
				}
			}
		}
	}
	return false
}

// directSinks are the sinks whose mere reference or call proves script
// runs (the jsSinks that also name ordinary code, such as "function" and
// "fetch", are left out).
var directSinks = newVocabWords([]string{"alert", "prompt", "confirm", "eval", "settimeout", "setinterval",
	"document.write", "string.fromcharcode"})

// globalObjects are the names of the global object and its aliases.
var globalObjects = newVocabWords([]string{"top[", "window[", "self[", "parent[", "frames[", "globalthis[", "this[", "document["})

// sinkStatement reports a call at f[k] == '(' whose argument list closes
// and is followed by the end, a ';', a '}' or a comment.
func sinkStatement(f []byte, k int) bool {
	depth := 0
	for j := k; j < len(f) && j-k < 256; j++ {
		switch f[j] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				e := skipSpace(f, j+1)
				return j > k+1 && (e == len(f) || f[e] == ';' || f[e] == '}' || f[e] == ',' || hasPrefix(f[e:], "//") || f[e] == '"' || f[e] == '\'')
			}
		}
	}
	return false
}

// stripCDATA appends f to dst with the CDATA markers removed and their
// content kept.
func stripCDATA(dst, f []byte) []byte {
	for len(f) > 0 {
		i := index(f, "<![cdata[")
		if i < 0 {
			return append(dst, f...)
		}
		dst = append(dst, f[:i]...)
		f = f[i+9:]
		end := index(f, "]]>")
		if end < 0 {
			return append(dst, f...)
		}
		dst = append(dst, f[:end]...)
		f = f[end+3:]
	}
	return dst
}

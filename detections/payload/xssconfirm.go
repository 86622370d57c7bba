package payload

// xssConfirmed reports whether the folded value holds a construct that runs
// script by itself, independently of libinjection's tokenizer: an event
// handler attribute, a tag that loads or runs code, a script URL, or a CSS
// expression. libinjection flags markup it cannot fully parse (random
// sensor blobs, styled HTML snippets); its verdict counts in full only when
// one of these is present too.
func xssConfirmed(f []byte) bool {
	for i := 0; i < len(f); i++ {
		switch c := f[i]; {
		case c == '<':
			if dangerousTagAt(f, i+1) {
				return true
			}
		case c == 'o' && i+1 < len(f) && f[i+1] == 'n':
			if eventHandlerAt(f, i) {
				return true
			}
		}
	}
	if scriptURLAny(f) {
		return true
	}
	for _, s := range []string{"expression(", "behavior:", "-moz-binding", "binding:", "@import", "url(javascript", "url(data:"} {
		if contains(f, s) {
			return true
		}
	}
	return false
}

// dangerousTags run or load code, or take over the page, without any
// attribute help.
var dangerousTags = map[string]bool{
	"script": true, "iframe": true, "frame": true, "frameset": true, "object": true, "embed": true,
	"applet": true, "base": true, "meta": true, "link": true, "import": true, "xml": true,
	"isindex": true, "xss": true, "svg": false, "math": false, "style": false, "portal": true,
	"template": false, "animate": false, "set": false, "handler": true, "listener": true, "bgsound": true,
	"layer": true, "ilayer": true, "form": false, "vmlframe": true, "param": false,
}

// dangerousTagAt reports a dangerous tag name starting at i (namespace
// prefixes such as "x:script" allowed), followed by the end of the name.
func dangerousTagAt(f []byte, i int) bool {
	for i < len(f) && (f[i] == ' ' || f[i] == '/') {
		i++
	}
	j := i
	for j < len(f) && (isLetter(f[j]) || isDigit(f[j]) || f[j] == '-' || f[j] == ':') {
		j++
	}
	if j == i {
		return false
	}
	name := f[i:j]
	for k := len(name) - 1; k >= 0; k-- {
		if name[k] == ':' {
			name = name[k+1:]
			break
		}
	}
	if !dangerousTags[str(name)] {
		return false
	}
	if j == len(f) || isWordByte(f[j]) {
		return false
	}
	if equalLower(name, "script") {
		return true
	}
	// The others need an attribute to load anything: "<object>" in an
	// error message is text, "<object data=...>" is not.
	k := j
	for k < len(f) && (f[k] == ' ' || f[k] == '/') {
		k++
	}
	return k > j && k < len(f) && isLetter(f[k])
}

// eventHandlerAt reports "on<letters>=" at i, as an attribute: preceded by
// a space, slash, quote, bracket or tag end, not inside a longer word, and
// followed by '=' after blanks or slashes ("onerror/=", which browsers
// read as "onerror=").
func eventHandlerAt(f []byte, i int) bool {
	if i > 0 {
		switch f[i-1] {
		case ' ', '/', '"', '\'', '`', '\t', '\n', ';', '+', ']':
		default:
			return false
		}
	}
	j := i + 2
	for j < len(f) && isLetter(f[j]) {
		j++
	}
	if j-i < 5 {
		return false
	}
	for j < len(f) && (isSpace(f[j]) || f[j] == '/') {
		j++
	}
	return j < len(f) && f[j] == '='
}

// scriptURLAny reports a javascript:, vbscript: or data:text/html URL,
// whatever follows it.
func scriptURLAny(f []byte) bool {
	for off := 0; ; {
		i := index(f[off:], "script:")
		if i < 0 {
			break
		}
		i += off
		off = i + 1
		p, n := i, 0
		var letters [4]byte
		for p > 0 && n < 4 && (isLetter(f[p-1]) || f[p-1] == ' ') {
			p--
			if f[p] != ' ' {
				letters[3-n] = f[p]
				n++
			}
		}
		if s := string(letters[4-n:]); s == "java" || s == "vb" || s == "live" {
			return true
		}
	}
	return contains(f, "data:text/html") || contains(f, "data:image/svg+xml") || contains(f, "data:application/x-javascript")
}

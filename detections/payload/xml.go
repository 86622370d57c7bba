package payload

import (
	"strings"

	"github.com/rampartgw/rampart/detections"
)

// maxXMLChunks bounds the text nodes and attribute values visited in one
// XML value, as max_fields bounds the fields of a request: the data of an
// XML document are its fields. Reaching it is a protocol_limit finding
// located limitXMLChunks (see Input.limitReached), because the data beyond
// are not inspected.
const maxXMLChunks = detections.DefaultMaxFields

// limitXMLChunks is the verdict location of the XML bound.
const limitXMLChunks = "limit:max_xml_chunks"

// isXMLField reports whether in holds an XML document: a body or part
// declared as XML, or any value that starts with an XML declaration.
func isXMLField(in *Input) bool {
	ct := in.Field.ContentType
	if strings.HasSuffix(ct, "/xml") || strings.HasSuffix(ct, "+xml") {
		return true
	}
	v := strings.TrimLeft(in.Field.Value, " \t\r\n")
	return len(v) > 5 && v[0] == '<' && v[1] == '?' && (v[2]|0x20) == 'x' && (v[3]|0x20) == 'm' && (v[4]|0x20) == 'l'
}

// xmlChunks calls fn with every text node, CDATA section and attribute value
// of the XML document s, still entity-encoded, skipping the markup itself:
// in an XML document the tags are the application's structure, and only
// the data inside them can carry an injection. Processing instructions,
// comments and the DOCTYPE are skipped (the xxe analyzer reads those). It
// stops when fn returns false, and at the chunk after maxXMLChunks, which
// it reports to in (the field's input) as a limit reached.
func xmlChunks(in *Input, s string, fn func(string) bool) {
	n := 0
	emit := func(c string) bool {
		if strings.TrimSpace(c) == "" {
			return true
		}
		n++
		if n > maxXMLChunks {
			in.limitReached(limitXMLChunks)
			return false
		}
		return fn(c)
	}
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			emit(s)
			return
		}
		if i > 0 && !emit(s[:i]) {
			return
		}
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "<?"):
			s = after(s, "?>")
		case strings.HasPrefix(s, "<!--"):
			s = after(s, "-->")
		case strings.HasPrefix(s, "<![CDATA["):
			end := strings.Index(s, "]]>")
			if end < 0 {
				emit(s[9:])
				return
			}
			if !emit(s[9:end]) {
				return
			}
			s = s[end+3:]
		case strings.HasPrefix(s, "<!"):
			s = after(s, ">")
		default:
			var ok bool
			if s, ok = xmlTag(s, emit); !ok {
				return
			}
		}
	}
}

// after returns what follows the first sep in s, or "" when there is none.
func after(s, sep string) string {
	if i := strings.Index(s, sep); i >= 0 {
		return s[i+len(sep):]
	}
	return ""
}

// xmlTag consumes the tag at the start of s, emitting its attribute values,
// and returns the rest.
func xmlTag(s string, emit func(string) bool) (string, bool) {
	i := 1
	for i < len(s) && s[i] != '>' {
		c := s[i]
		if c == '"' || c == '\'' {
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return "", emit(s[i+1:])
			}
			if !emit(s[i+1 : i+1+end]) {
				return "", false
			}
			i += end + 2
			continue
		}
		i++
	}
	if i >= len(s) {
		return "", true
	}
	return s[i+1:], true
}

package detections

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/rampartgw/rampart/detections/normalize"
)

// walkJSON visits the keys and scalar values of a JSON document in document
// order, with dotted paths ("a.b[2].c"), without building a tree: one pass,
// reusing two buffers, so a 1 KiB body costs a few allocations at most. It
// returns false when the body is not valid JSON (the caller then inspects it
// as raw text). Values nested deeper than the scope's MaxDepth are not
// visited, and the limit is reported.
//
// Field.Name and Field.Value point into reused buffers: they are valid only
// during the visit, as documented on FieldVisitor.
func (w *walker) walkJSON(data []byte) bool {
	if !validJSON(data) {
		return false
	}
	j := jsonScanner{w: w, data: data, path: w.jsonPath[:0], str: w.jsonStr[:0]}
	j.value(0, 0)
	// The walker is pooled: keep the grown buffers for the next body.
	w.jsonPath, w.jsonStr = j.path[:0], j.str[:0]
	return true
}

type jsonScanner struct {
	w     *walker
	data  []byte
	i     int
	path  []byte
	str   []byte // unescaped strings
	stop  bool   // the visitor asked to stop
	depth int
}

func (j *jsonScanner) ws() {
	for j.i < len(j.data) {
		switch j.data[j.i] {
		case ' ', '\t', '\n', '\r':
			j.i++
		default:
			return
		}
	}
}

func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (j *jsonScanner) emit(isKey bool, name, value string) {
	if j.stop {
		return
	}
	if j.depth > j.w.maxDepth {
		if !j.w.limit(WalkLimitDepth) {
			j.stop = true
		}
		return
	}
	if !j.w.emit(FieldJSON, isKey, name, value, false, false) {
		j.stop = true
	}
}

// value scans one value whose path is j.path[:pathLen].
func (j *jsonScanner) value(pathLen, depth int) {
	j.ws()
	if j.i >= len(j.data) {
		return
	}
	j.depth = depth
	switch c := j.data[j.i]; {
	case c == '{':
		j.i++
		for {
			j.ws()
			if j.data[j.i] == '}' {
				j.i++
				return
			}
			if j.data[j.i] == ',' {
				j.i++
				j.ws()
			}
			key := j.string(true)
			j.path = j.path[:pathLen]
			if pathLen > 0 {
				j.path = append(j.path, '.')
			}
			j.path = append(j.path, key...)
			j.depth = depth
			j.emit(true, bytesString(j.path), bytesString(key))
			j.ws()
			j.i++ // ':'
			j.value(len(j.path), depth+1)
			j.ws()
		}
	case c == '[':
		j.i++
		for idx := 0; ; idx++ {
			j.ws()
			if j.data[j.i] == ']' {
				j.i++
				return
			}
			if j.data[j.i] == ',' {
				j.i++
			}
			j.path = append(j.path[:pathLen], '[')
			j.path = strconv.AppendInt(j.path, int64(idx), 10)
			j.path = append(j.path, ']')
			j.value(len(j.path), depth+1)
			j.ws()
		}
	case c == '"':
		s := j.string(false)
		j.emit(false, bytesString(j.path[:pathLen]), bytesString(s))
	case c == 'n':
		j.i += 4 // null: nothing to inspect
	default: // number, true, false
		start := j.i
		for j.i < len(j.data) {
			switch j.data[j.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				j.emit(false, bytesString(j.path[:pathLen]), bytesString(j.data[start:j.i]))
				return
			}
			j.i++
		}
		j.emit(false, bytesString(j.path[:pathLen]), bytesString(j.data[start:j.i]))
	}
}

// string scans a string literal at j.i (already validated) and returns its
// content: a slice of the input when it has no escapes, else the unescaped
// text in j.str. A key is copied into the path right away, so keys and
// values may share j.str.
func (j *jsonScanner) string(key bool) []byte {
	j.i++ // opening quote
	start := j.i
	for j.i < len(j.data) && j.data[j.i] != '"' && j.data[j.i] != '\\' {
		j.i++
	}
	if j.i < len(j.data) && j.data[j.i] == '"' {
		j.i++
		return j.data[start : j.i-1]
	}
	j.str = append(j.str[:0], j.data[start:j.i]...)
	for j.i < len(j.data) {
		c := j.data[j.i]
		switch {
		case c == '"':
			j.i++
			return j.str
		case c != '\\':
			j.str = append(j.str, c)
			j.i++
			continue
		}
		j.i++
		switch e := j.data[j.i]; e {
		case 'n':
			j.str = append(j.str, '\n')
		case 't':
			j.str = append(j.str, '\t')
		case 'r':
			j.str = append(j.str, '\r')
		case 'b':
			j.str = append(j.str, '\b')
		case 'f':
			j.str = append(j.str, '\f')
		case 'u':
			r, _ := normalize.Hex4(j.data[j.i+1 : j.i+5]) // validated JSON: four hex digits
			j.i += 4
			if utf16.IsSurrogate(r) && j.i+6 < len(j.data) && j.data[j.i+1] == '\\' && j.data[j.i+2] == 'u' {
				if r2, _ := normalize.Hex4(j.data[j.i+3 : j.i+7]); utf16.DecodeRune(r, r2) != utf8.RuneError {
					r = utf16.DecodeRune(r, r2)
					j.i += 6
				}
			}
			j.str = utf8.AppendRune(j.str, r)
		default: // '"', '\\', '/'
			j.str = append(j.str, e)
		}
		j.i++
	}
	return j.str
}

// maxNesting is encoding/json's bound on nesting: deeper documents are
// invalid to it, and so here.
const maxNesting = 10000

// validJSON reports whether data is one JSON value with nothing but blanks
// around it, exactly as encoding/json's Valid does, in one iterative pass
// (FuzzValidJSON checks the two agree). Like Valid it accepts invalid
// UTF-8 inside strings and rejects control bytes there.
func validJSON(data []byte) bool {
	// open holds one bit per nesting level: 1 for an object, 0 for an
	// array.
	var open [maxNesting/64 + 1]uint64
	depth := 0
	i := skipBlanks(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if depth == maxNesting {
				return false
			}
			if c == '{' {
				open[depth/64] |= 1 << (depth % 64)
			} else {
				open[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			i = skipBlanks(data, i+1)
			if i < len(data) && (c == '{' && data[i] == '}' || c == '[' && data[i] == ']') {
				depth--
				i++
				break
			}
			if c == '{' {
				if i = jsonKey(data, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			if i = jsonStringEnd(data, i); i < 0 {
				return false
			}
		case c == '-' || '0' <= c && c <= '9':
			if i = jsonNumberEnd(data, i); i < 0 {
				return false
			}
		case c == 't':
			if !hasLiteral(data, i, "true") {
				return false
			}
			i += 4
		case c == 'f':
			if !hasLiteral(data, i, "false") {
				return false
			}
			i += 5
		case c == 'n':
			if !hasLiteral(data, i, "null") {
				return false
			}
			i += 4
		default:
			return false
		}
		// After a value: a separator, a closer, or the end.
		for {
			i = skipBlanks(data, i)
			if depth == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			object := open[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			switch c := data[i]; {
			case c == ',':
				i = skipBlanks(data, i+1)
				if object {
					if i = jsonKey(data, i); i < 0 {
						return false
					}
				}
			case object && c == '}', !object && c == ']':
				depth--
				i++
				continue
			default:
				return false
			}
			break
		}
	}
}

// jsonKey checks `"key" :` at i and returns the index after the colon and
// its blanks, or -1.
func jsonKey(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = jsonStringEnd(data, i); i < 0 {
		return -1
	}
	i = skipBlanks(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipBlanks(data, i+1)
}

func skipBlanks(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

func hasLiteral(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

// jsonStringEnd returns the index after the string literal at i, or -1.
func jsonStringEnd(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				if _, ok := normalize.Hex4(data[i+1 : i+5]); !ok {
					return -1
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// jsonNumberEnd returns the index after the number at i, or -1:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumberEnd(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return -1
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return -1
		}
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	return i
}

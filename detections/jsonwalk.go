package detections

import (
	"encoding/json"
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
// as raw text). Deeper than maxJSONDepth, values are skipped.
//
// Field.Name and Field.Value point into reused buffers: they are valid only
// during the visit, as documented on FieldVisitor.
func (w *walker) walkJSON(data []byte) bool {
	if !json.Valid(data) {
		return false
	}
	j := jsonScanner{w: w, data: data}
	j.value(0, 0)
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
	if j.stop || j.depth > maxJSONDepth {
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

// Package config decodes YAML configuration files strictly into the config
// structs that each package declares (with their own yaml tags), keeping
// every key's line, and reports every problem at once: unknown keys with
// the nearest known one as a hint, values of the wrong type, and the
// packages' own validation errors, each with its key and line.
//
// It knows no package of the gateway: the composition root (cmd/gateway)
// puts the packages' structs together into one file type and hands it
// here. It imports nothing that imports Echo or Prometheus.
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Document is a decoded file: where every key was, for error messages.
type Document struct {
	name  string
	lines map[string]int // key path -> line
	keys  []string       // key paths in file order
}

// Error is one problem in a file.
type Error struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path ("" for the whole file)
	Msg  string
	Hint string // e.g. `did you mean "upstream"?`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (")
		b.WriteString(e.Hint)
		b.WriteString(")")
	}
	return b.String()
}

// Decode decodes data strictly into dst, a pointer to a struct already
// holding the defaults: keys absent from the file keep their default, lists
// in the file replace the default list, maps add to it. It decodes value by
// value, so it returns every unknown key and every bad value at once, each
// with its key and line.
func Decode(name string, data []byte, dst any) (*Document, error) {
	d := &Document{name: name, lines: map[string]int{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return d, nil
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return d, d.yamlError(err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return d, nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return d, &Error{File: name, Line: top.Line, Msg: "the file must be a mapping of keys to values"}
	}
	return d, sortErrors(d.decode(top, reflect.ValueOf(dst).Elem(), ""))
}

func (d *Document) yamlError(err error) error {
	msg := err.Error()
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &Error{File: d.name, Line: n, Msg: m[2]}
	}
	return &Error{File: d.name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

var lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decode decodes n into v (addressable), recording key lines and
// collecting every error.
func (d *Document) decode(n *yaml.Node, v reflect.Value, path string) []error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if n.Tag == "!!null" {
			v.Set(reflect.Zero(t))
			return nil
		}
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		return d.decode(n, v.Elem(), path)
	}
	if done, errs := d.decodeShorthand(n, v, path); done {
		return errs
	}
	if leaf(t) || n.Kind == yaml.ScalarNode || t.Kind() == reflect.Interface {
		return d.decodeLeaf(n, v, path)
	}
	var errs []error
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return []error{d.errorAt(n, path, "want a mapping of keys to values")}
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			d.record(p, k.Line)
			fv, ok := fieldByKey(v, k.Value)
			if !ok {
				e := &Error{File: d.name, Line: k.Line, Key: p, Msg: "unknown key"}
				if near := nearest(k.Value, keysOf(fields)); near != "" {
					e.Hint = fmt.Sprintf("did you mean %q?", join(path, near))
				}
				errs = append(errs, e)
				continue
			}
			errs = append(errs, d.decode(val, fv, p)...)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return []error{d.errorAt(n, path, "want a mapping")}
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			d.record(p, k.Line)
			key := reflect.New(t.Key()).Elem()
			if err := k.Decode(key.Addr().Interface()); err != nil {
				errs = append(errs, d.errorAt(k, p, cleanYAML(err)))
				continue
			}
			elem := reflect.New(t.Elem()).Elem()
			if old := v.MapIndex(key); old.IsValid() {
				elem.Set(old)
			}
			errs = append(errs, d.decode(val, elem, p)...)
			v.SetMapIndex(key, elem)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return []error{d.errorAt(n, path, "want a list")}
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, val := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			d.record(p, val.Line)
			errs = append(errs, d.decode(val, s.Index(i), p)...)
		}
		v.Set(s)
	default:
		return d.decodeLeaf(n, v, path)
	}
	return errs
}

// decodeLeaf decodes one value with the YAML library (scalars, durations,
// TextUnmarshalers, and their lists).
func (d *Document) decodeLeaf(n *yaml.Node, v reflect.Value, path string) []error {
	if v.Type() == durationType && n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "d") {
		// Days, which time.ParseDuration does not know: 7d, 1d12h.
		dur, err := parseDays(n.Value)
		if err != nil {
			return []error{d.errorAt(n, path, err.Error())}
		}
		v.SetInt(int64(dur))
		return nil
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	if err := n.Decode(p.Interface()); err != nil {
		return []error{d.errorAt(n, path, cleanYAML(err))}
	}
	v.Set(p.Elem())
	return nil
}

func (d *Document) errorAt(n *yaml.Node, path, msg string) error {
	return &Error{File: d.name, Line: n.Line, Key: path, Msg: msg}
}

// cleanYAML drops the library's "yaml: line N:" prefix (the error already
// names the key and line) and says "use" where it says "unmarshal".
func cleanYAML(err error) string {
	var te *yaml.TypeError
	msg := err.Error()
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = strings.Join(te.Errors, "; ")
	}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		msg = m[2]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return strings.Replace(msg, "cannot unmarshal", "cannot use", 1)
}

func (d *Document) record(path string, line int) {
	if _, ok := d.lines[path]; !ok {
		d.keys = append(d.keys, path)
	}
	d.lines[path] = line
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// leaf reports types decoded from one scalar (or by their own
// UnmarshalYAML), whose insides are not keys.
func leaf(t reflect.Type) bool {
	if t == durationType {
		return true
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(yamlUnmarshaler) {
		return true
	}
	if pt.Implements(textUnmarshaler) && t.Kind() != reflect.Struct {
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return false
	}
	return true
}

// yamlFields maps the yaml keys of a struct (inline fields flattened) to
// their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func keysOf(m map[string]reflect.Type) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearest returns the known key closest to k (edit distance at most a
// third of its length, at least 2), or "".
func nearest(k string, known []string) string {
	best, bestD := "", max(2, len(k)/3)+1
	for _, c := range known {
		if d := distance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Keys returns the key paths present in the file, in file order.
func (d *Document) Keys() []string { return append([]string(nil), d.keys...) }

// Line returns the line of a key path (0 when absent).
func (d *Document) Line(key string) int { return d.lines[key] }

// keyRE matches the key a validation message starts with.
var keyRE = regexp.MustCompile(`^([a-z0-9_]+(?:\[\d+\])*(?:\.[a-z0-9_-]+(?:\[\d+\])*)*): (.*)$`)

// Annotate turns a package's validation errors into errors naming their
// key (under prefix, the package's section) and its line. A message that
// starts with "key: " is attributed to that key; others to the section.
// Joined errors are split into one error each.
func (d *Document) Annotate(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var out []error
	for _, leafErr := range flatten(err) {
		msg := leafErr.Error()
		key := prefix
		if m := keyRE.FindStringSubmatch(msg); m != nil {
			k := m[1]
			if prefix != "" && !strings.HasPrefix(k, prefix+".") && k != prefix {
				k = join(prefix, strings.TrimPrefix(k, lastSegment(prefix)+"."))
			}
			key, msg = k, m[2]
		}
		out = append(out, &Error{File: d.name, Line: d.lineOf(key), Key: key, Msg: msg})
	}
	return sortErrors(out)
}

// lastSegment is the last element of a dotted path: a package that names
// its own section in its messages ("payload.threshold") is not prefixed
// twice.
func lastSegment(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// lineOf returns the line of key or of its nearest present parent.
func (d *Document) lineOf(key string) int {
	for k := key; k != ""; {
		if n, ok := d.lines[k]; ok {
			return n
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return 0
}

// flatten splits joined errors into their leaves.
func flatten(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		out = append(out, e)
	}
	walk(err)
	return out
}

// sortErrors joins errors in line order (unknown lines last), one per
// line of text, dropping duplicates.
func sortErrors(errs []error) error {
	var all []error
	for _, e := range errs {
		if e != nil {
			all = append(all, flatten(e)...)
		}
	}
	if len(all) == 0 {
		return nil
	}
	line := func(e error) int {
		var ce *Error
		if errors.As(e, &ce) && ce.Line > 0 {
			return ce.Line
		}
		return 1 << 30
	}
	sort.SliceStable(all, func(i, j int) bool { return line(all[i]) < line(all[j]) })
	seen := map[string]bool{}
	out := all[:0]
	for _, e := range all {
		if s := e.Error(); !seen[s] {
			seen[s] = true
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// Join joins errors as Decode does: sorted by line, one per line of text.
func Join(errs ...error) error { return sortErrors(errs) }

// Set assigns the field at a dotted key path of dst (a pointer to a
// struct) from text, as an environment override: strings are taken as
// they are, lists of strings are split on commas, and everything else is
// decoded as a YAML scalar of the field's type.
func Set(dst any, key, text string) error {
	v := reflect.ValueOf(dst).Elem()
	for _, part := range strings.Split(key, ".") {
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		f, ok := fieldByKey(v, part)
		if !ok {
			return fmt.Errorf("%s: no such key", key)
		}
		v = f
	}
	if isShorthand(v.Type()) {
		return setShorthand(v, key, text)
	}
	switch {
	case v.Kind() == reflect.String && !reflect.PointerTo(v.Type()).Implements(textUnmarshaler):
		v.SetString(text)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, p := range strings.Split(text, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
		s := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, it := range items {
			s.Index(i).SetString(it)
		}
		v.Set(s)
	default:
		p := reflect.New(v.Type())
		if err := yaml.Unmarshal([]byte(text), p.Interface()); err != nil {
			return fmt.Errorf("%s: %q: %v", key, text, strings.TrimPrefix(err.Error(), "yaml: "))
		}
		v.Set(p.Elem())
	}
	return nil
}

// fieldByKey finds the field whose yaml key is k, looking into inline
// fields.
func fieldByKey(v reflect.Value, k string) (reflect.Value, bool) {
	t := v.Type()
	if t.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			if fv, ok := fieldByKey(v.Field(i), k); ok {
				return fv, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == k && f.IsExported() {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// KeyPaths lists every key path of the type of v (a struct or a pointer to
// one), maps and lists included by their element's keys ("a.*.b",
// "a[].b"), for documentation checks.
func KeyPaths(v any) []string {
	var out []string
	var walk func(t reflect.Type, path string, depth int)
	walk = func(t reflect.Type, path string, depth int) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if depth > 8 {
			return
		}
		if path != "" {
			out = append(out, path)
		}
		// A struct with a text form (fallback: off) is written as one value.
		if leaf(t) || reflect.PointerTo(t).Implements(textUnmarshaler) {
			return
		}
		switch t.Kind() {
		case reflect.Struct:
			fields := yamlFields(t)
			for _, k := range keysOf(fields) {
				walk(fields[k], join(path, k), depth+1)
			}
		case reflect.Map:
			walk(t.Elem(), join(path, "*"), depth+1)
		case reflect.Slice, reflect.Array:
			walk(t.Elem(), path+"[]", depth+1)
		}
	}
	walk(reflect.TypeOf(v), "", 0)
	sort.Strings(out)
	return out
}

// parseDays reads a duration with a leading number of days ("7d",
// "1d12h"); the rest is a Go duration.
func parseDays(s string) (time.Duration, error) {
	i := strings.IndexByte(s, 'd')
	n, err := strconv.Atoi(s[:i])
	if err != nil || n < 0 || n > 36500 {
		return 0, fmt.Errorf("%q is not a duration (days, then a Go duration: 7d, 1d12h, 36h)", s)
	}
	days := time.Duration(n) * 24 * time.Hour
	if rest := s[i+1:]; rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (days, then a Go duration: 7d, 1d12h, 36h)", s)
		}
		days += d
	}
	return days, nil
}

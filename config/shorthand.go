package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Shorthand is implemented (on the pointer) by a config struct that also
// accepts a shorter form than its mapping, such as an upstream written as
// one URL or a list of URLs instead of {instances: [...]}.
//
// Decode offers every value of such a type to DecodeShorthand before its
// own decoding. For a scalar or a list, DecodeShorthand decodes the value
// and returns handled=true, or returns false to let Decode proceed as for
// any struct (which reports "want a mapping"). A mapping always goes
// through Decode's field-by-field path, so unknown keys inside it still get
// their line and hint; DecodeShorthand sees it first only to prepare the
// value, e.g. to fill a zero value (a new list element) with its defaults,
// and its handled result is ignored. A non-nil error is reported with the
// value's key and line (joined errors one by one).
//
// Unlike yaml.Unmarshaler, implementing Shorthand keeps the struct's keys
// visible to Decode's hints and to KeyPaths.
type Shorthand interface {
	DecodeShorthand(n *yaml.Node) (handled bool, err error)
}

var shorthandType = reflect.TypeFor[Shorthand]()

// isShorthand reports whether the values of t implement Shorthand through
// their pointer.
func isShorthand(t reflect.Type) bool {
	return t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(shorthandType)
}

// decodeShorthand offers n to v's DecodeShorthand; done says that v is
// decoded (or failed) and Decode must not look at n again.
func (d *Document) decodeShorthand(n *yaml.Node, v reflect.Value, path string) (done bool, errs []error) {
	if !v.CanAddr() || !isShorthand(v.Type()) {
		return false, nil
	}
	handled, err := v.Addr().Interface().(Shorthand).DecodeShorthand(n)
	if err != nil {
		for _, e := range flatten(err) {
			errs = append(errs, d.errorAt(n, path, e.Error()))
		}
		return true, errs
	}
	return handled && n.Kind != yaml.MappingNode, nil
}

// setShorthand is Set for a Shorthand field: text is read as YAML (so a
// flow mapping such as "{instances: [a, b]}" works), and a plain scalar
// holding commas is taken as the list of its comma-separated parts, like
// Set's lists of strings.
func setShorthand(v reflect.Value, key, text string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return fmt.Errorf("%s: %q: %v", key, text, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str"}
	if len(doc.Content) > 0 {
		n = doc.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Style == 0 && strings.Contains(n.Value, ",") {
		seq := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column}
		for _, p := range strings.Split(n.Value, ",") {
			if p = strings.TrimSpace(p); p != "" {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
			}
		}
		n = seq
	}
	d := &Document{name: "environment", lines: map[string]int{}}
	var out []error
	for _, e := range d.decode(n, v, key) {
		var ce *Error
		if errors.As(e, &ce) {
			msg := ce.Msg
			if ce.Hint != "" {
				msg += " (" + ce.Hint + ")"
			}
			e = fmt.Errorf("%s: %s", ce.Key, msg)
		}
		out = append(out, e)
	}
	return errors.Join(out...)
}

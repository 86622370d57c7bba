package config

import (
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Raw keeps a value's YAML as written, to be decoded later over other
// values with DecodeAt: a route's detection overrides are decoded over a
// copy of the file's top-level detection sections, so a route states only
// what differs. Errors found then still name the key and line.
type Raw struct {
	// Node is the value's node (nil when the key is absent).
	Node *yaml.Node
}

// UnmarshalYAML implements yaml.Unmarshaler: it keeps the node.
func (r *Raw) UnmarshalYAML(n *yaml.Node) error {
	r.Node = n
	return nil
}

// IsZero reports an absent value.
func (r Raw) IsZero() bool { return r.Node == nil }

// DecodeAt decodes r strictly into dst (a pointer to a struct holding the
// values to decode over) as the value of key path in d: unknown keys, bad
// values and their lines are reported like Decode's, under path. A zero
// Raw leaves dst as it is.
func (d *Document) DecodeAt(r Raw, dst any, path string) error {
	if r.Node == nil {
		return nil
	}
	n := r.Node
	if n.Kind == yaml.MappingNode || n.Kind == yaml.AliasNode || n.Tag == "!!null" {
		return sortErrors(d.decode(n, reflect.ValueOf(dst).Elem(), path))
	}
	return &Error{File: d.name, Line: n.Line, Key: path, Msg: "must be a mapping of keys to values"}
}

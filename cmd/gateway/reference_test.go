package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

var updateReference = flag.Bool("update-reference", false, "rewrite docs/configuration.md from the configuration types")

// TestConfigReference: docs/configuration.md is generated from the
// configuration types themselves (every key, its type, its default and the
// field's doc comment), so no key can be missing from it or documented
// with a stale default. Run with -update-reference after changing a
// config type.
func TestConfigReference(t *testing.T) {
	got := configReference(t)
	path := filepath.Join("..", "..", "docs", "configuration.md")
	if *updateReference {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("docs/configuration.md is out of date with the config types: go test ./cmd/gateway -run TestConfigReference -update-reference")
	}
}

// docs reads field comments from the repository's Go sources.
type docs struct {
	t      *testing.T
	root   string
	parsed map[string]map[string]*ast.StructType // package dir -> type name -> struct
}

func (d *docs) structOf(t reflect.Type) *ast.StructType {
	pkg := t.PkgPath()
	const mod = "github.com/rampartgw/rampart"
	if !strings.HasPrefix(pkg, mod) {
		return nil
	}
	dir := filepath.Join(d.root, strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/"))
	if pkg == "main" {
		dir = "."
	}
	types, ok := d.parsed[dir]
	if !ok {
		types = map[string]*ast.StructType{}
		fset := token.NewFileSet()
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
			if err != nil {
				d.t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if ts, ok := n.(*ast.TypeSpec); ok {
					if st, ok := ts.Type.(*ast.StructType); ok {
						types[ts.Name.Name] = st
					}
				}
				return true
			})
		}
		d.parsed[dir] = types
	}
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i] // a generic type's instance
	}
	return types[name]
}

// fieldDoc is the doc comment of field name of struct type t, on one line.
func (d *docs) fieldDoc(t reflect.Type, name string) string {
	st := d.structOf(t)
	if st == nil {
		return ""
	}
	last := ""
	for _, f := range st.Fields.List {
		text := ""
		if f.Doc != nil {
			text = f.Doc.Text()
		} else if f.Comment != nil {
			text = f.Comment.Text()
		}
		text = strings.Join(strings.Fields(text), " ")
		for _, n := range f.Names {
			if n.Name != name {
				continue
			}
			// Fields documented together ("ReadHeader, Read, Write and
			// Idle are ...") share the comment above the first.
			if text == "" && regexp.MustCompile(`\b`+name+`\b`).MatchString(last) {
				return last
			}
			return text
		}
		if text != "" {
			last = text
		}
	}
	return ""
}

type refRow struct {
	key, typ, def, doc string
}

// configReference renders docs/configuration.md.
func configReference(t *testing.T) string {
	d := &docs{t: t, root: filepath.Join("..", ".."), parsed: map[string]map[string]*ast.StructType{}}
	var rows []refRow
	var walk func(t reflect.Type, v reflect.Value, path string, depth int)
	walk = func(t reflect.Type, v reflect.Value, path string, depth int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || (!f.IsExported() && !f.Anonymous) {
				continue
			}
			fv := reflect.Value{}
			if v.IsValid() {
				fv = v.Field(i)
			}
			if strings.Contains(opts, "inline") {
				ft := f.Type
				for ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				walk(ft, fv, path, depth)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			key := joinKey(path, name)
			doc := d.fieldDoc(t, f.Name)
			if rest, ok := strings.CutPrefix(doc, f.Name+" "); ok {
				doc = "`" + name + "` " + rest // the key, not the Go field
			}
			ft := f.Type
			if expands(ft) && depth < 6 {
				rows = append(rows, refRow{key: key, typ: "section", doc: doc})
				walk(ft, fv, key, depth+1)
				continue
			}
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && expands(ft.Elem()) && depth < 6 {
				rows = append(rows, refRow{key: key, typ: "list", def: render(fv), doc: doc})
				walk(ft.Elem(), reflect.Value{}, key+"[]", depth+1)
				continue
			}
			if ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Struct && expands(ft.Elem()) && depth < 6 {
				rows = append(rows, refRow{key: key, typ: "map", def: render(fv), doc: doc})
				walk(ft.Elem(), reflect.Value{}, key+".<name>", depth+1)
				continue
			}
			rows = append(rows, refRow{key: key, typ: typeName(ft), def: render(fv), doc: doc})
		}
	}
	f := defaultFile()
	walk(reflect.TypeOf(*f), reflect.ValueOf(*f), "", 0)

	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from the configuration types by
     go test ./cmd/gateway -run TestConfigReference -update-reference
     Do not edit: change the types' doc comments instead. -->

Every key of the YAML file (` + "`-config`" + `, ` + "`GATEWAY_CONFIG`" + `), with its type, its default and what it does.
[config.example.yaml](../config.example.yaml) is the same file written out with its defaults; the
[README](../README.md#configuration) lists the environment variables. Keys are strict: an unknown key, a value of
the wrong type or an invalid value stops the gateway (and ` + "`gateway -check-config`" + `) with the key and its line.
A key under ` + "`routes[]`" + ` is per list entry; ` + "`<name>`" + ` stands for a map key. Durations are Go durations
(` + "`250ms`, `30s`, `10m`, `24h`" + `); limits are written ` + "`{rate: 5, burst: 5, period: 1m}`" + `.

`)
	// The file's first-level values in one table, then one table per
	// section in file order.
	var order []string
	groups := map[string][]refRow{}
	for _, r := range rows {
		top, _, _ := strings.Cut(r.key, ".")
		top, _, _ = strings.Cut(top, "[")
		if top == r.key && r.typ != "section" && r.typ != "list" && r.typ != "map" {
			top = ""
		}
		if _, ok := groups[top]; !ok {
			order = append(order, top)
		}
		groups[top] = append(groups[top], r)
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i] == "" && order[j] != "" })
	for _, g := range order {
		title := "Top level"
		if g != "" {
			title = "`" + g + "`"
		}
		fmt.Fprintf(&b, "\n## %s\n\n| Key | Type | Default | Meaning |\n|---|---|---|---|\n", title)
		for _, r := range groups[g] {
			def := r.def
			if def != "" {
				def = "`" + strings.ReplaceAll(def, "|", `\|`) + "`"
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", r.key, r.typ, def, strings.ReplaceAll(r.doc, "|", `\|`))
		}
	}
	return b.String()
}

// expands reports struct types whose keys are listed one by one (not
// values with a text form, such as durations or limits spelt "off").
func expands(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return false
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) {
		return false
	}
	if pt.Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return false
	}
	return t.Name() != "Raw"
}

func typeName(t reflect.Type) string {
	if reflect.PointerTo(t).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) && t.Kind() != reflect.Struct {
		return "string"
	}
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "duration"
	case t.Name() == "Raw":
		return "mapping"
	case t.Kind() == reflect.Slice:
		return "list of " + typeName(t.Elem())
	case t.Kind() == reflect.Map:
		return "map of " + typeName(t.Elem())
	case t.Kind() == reflect.Struct:
		return "mapping"
	case t.Kind() == reflect.String && t.Name() != "string":
		return "string"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint64, reflect.Uint32:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	}
	return t.Kind().String()
}

// render writes a default value as YAML would show it.
func render(v reflect.Value) string {
	if !v.IsValid() {
		return ""
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		return shortDuration(time.Duration(v.Int()))
	}
	if s, ok := v.Interface().(fmt.Stringer); ok && v.Kind() != reflect.Struct {
		return s.String()
	}
	switch v.Kind() {
	case reflect.String:
		if v.String() == "" {
			return `""`
		}
		return v.String()
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		if v.Len() == 0 {
			return "{}"
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprint(k) + ": " + render(v.MapIndex(k))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.Struct:
		if s, ok := v.Interface().(fmt.Stringer); ok {
			return s.String()
		}
		return ""
	}
	return fmt.Sprint(v.Interface())
}

// shortDuration is 1m rather than 1m0s, 7d rather than 168h0m0s.
func shortDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d%(24*time.Hour) == 0 && d >= 48*time.Hour {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func joinKey(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

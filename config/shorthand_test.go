package config_test

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/rampartgw/rampart/config"
)

// target is a struct with a short form: a name, or a list of names.
type target struct {
	Names    []string `yaml:"names"`
	Weight   int      `yaml:"weight"`
	Prepared bool     `yaml:"-"`
}

func (t *target) DecodeShorthand(n *yaml.Node) (bool, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag != "!!str" {
			return true, errors.New("want a name")
		}
		t.Names = []string{n.Value}
		return true, nil
	case yaml.SequenceNode:
		t.Names = nil
		for _, e := range n.Content {
			t.Names = append(t.Names, e.Value)
		}
		return true, nil
	case yaml.MappingNode:
		t.Prepared = true
		return true, nil // ignored: mappings are decoded key by key
	}
	return false, nil
}

var _ config.Shorthand = (*target)(nil)

type withTargets struct {
	One   target            `yaml:"one"`
	List  []target          `yaml:"list"`
	ByKey map[string]target `yaml:"by_key"`
	Ptr   *target           `yaml:"ptr"`
}

func TestShorthandForms(t *testing.T) {
	src := "one: a\nlist:\n  - [b, c]\n  - {names: [d], weight: 2}\nby_key:\n  x: e\nptr: f\n"
	var f withTargets
	f.One.Weight = 7
	doc, err := config.Decode("s.yaml", []byte(src), &f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.One.Names, ",") != "a" || f.One.Weight != 7 {
		t.Errorf("scalar: %+v", f.One)
	}
	if len(f.List) != 2 || strings.Join(f.List[0].Names, ",") != "b,c" || f.List[0].Prepared {
		t.Fatalf("list: %+v", f.List)
	}
	if m := f.List[1]; strings.Join(m.Names, ",") != "d" || m.Weight != 2 || !m.Prepared {
		t.Errorf("a mapping is prepared, then decoded key by key: %+v", m)
	}
	if strings.Join(f.ByKey["x"].Names, ",") != "e" || f.Ptr == nil || strings.Join(f.Ptr.Names, ",") != "f" {
		t.Errorf("map value %+v, pointer %+v", f.ByKey, f.Ptr)
	}
	if doc.Line("list[1].weight") != 4 || doc.Line("one") != 1 {
		t.Errorf("lines: %v", doc.Keys())
	}
}

func TestShorthandErrors(t *testing.T) {
	src := "one: 5\nlist:\n  - {names: [d], wieght: 2}\nptr: {weight: heavy}\n"
	_, err := config.Decode("s.yaml", []byte(src), &withTargets{})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{
		"s.yaml:1: one: want a name",
		`s.yaml:3: list[0].wieght: unknown key (did you mean "list[0].weight"?)`,
		"s.yaml:4: ptr.weight: cannot use",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}
}

func TestShorthandSet(t *testing.T) {
	var f withTargets
	f.One.Weight = 3
	for _, tc := range []struct{ text, want string }{
		{"a", "a"}, {"a, b,c", "a|b|c"}, {"[x, y]", "x|y"}, {`"p,q"`, "p,q"},
	} {
		if err := config.Set(&f, "one", tc.text); err != nil {
			t.Fatal(tc.text, err)
		}
		if got := strings.Join(f.One.Names, "|"); got != tc.want || f.One.Weight != 3 {
			t.Errorf("Set(%q): %q, %+v", tc.text, got, f.One)
		}
	}
	if err := config.Set(&f, "one", "{weight: 9}"); err != nil || f.One.Weight != 9 {
		t.Errorf("a mapping: %+v %v", f.One, err)
	}
	for _, bad := range []string{"5", "{wieght: 1}", "[a"} {
		err := config.Set(&f, "one", bad)
		if err == nil || !strings.HasPrefix(err.Error(), "one") {
			t.Errorf("Set(%q): %v", bad, err)
		}
	}
}

func TestShorthandKeyPaths(t *testing.T) {
	got := " " + strings.Join(config.KeyPaths(withTargets{}), " ") + " "
	for _, w := range []string{"one.names", "one.weight", "list[].weight", "by_key.*.names", "ptr.weight"} {
		if !strings.Contains(got, " "+w+" ") {
			t.Errorf("key paths lack %s: %s", w, got)
		}
	}
}

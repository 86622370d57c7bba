package config_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampartgw/rampart/config"
)

type mode string

func (m *mode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "on", "off":
		*m = mode(b)
		return nil
	}
	return fmt.Errorf("%q is not on or off", b)
}

type inner struct {
	Rate  int           `yaml:"rate"`
	Every time.Duration `yaml:"every"`
}

type section struct {
	inner `yaml:",inline"`
	Mode  mode              `yaml:"mode"`
	Tags  []string          `yaml:"tags"`
	Per   map[string]inner  `yaml:"per"`
	Skip  string            `yaml:"-"`
	Extra map[string]string `yaml:"extra"`
}

type file struct {
	Listen  string  `yaml:"listen"`
	Section section `yaml:"section"`
	List    []inner `yaml:"list"`
	Ptr     *inner  `yaml:"ptr"`
	Modes   []mode  `yaml:"modes"`
	Nested  struct {
		A struct {
			B int `yaml:"b"`
		} `yaml:"a"`
	} `yaml:"nested"`
}

func defaults() *file {
	f := &file{Listen: ":80"}
	f.Section.Rate, f.Section.Mode, f.Section.Tags = 5, "on", []string{"a"}
	f.Section.Per = map[string]inner{"x": {Rate: 1}}
	return f
}

func TestDecodeKeepsDefaultsAndLines(t *testing.T) {
	f := defaults()
	doc, err := config.Decode("f.yaml", []byte("section:\n  every: 2s\n  tags: [b, c]\n  per:\n    y: {rate: 2}\nptr: {rate: 3}\n"), f)
	if err != nil {
		t.Fatal(err)
	}
	if f.Listen != ":80" || f.Section.Rate != 5 || f.Section.Every != 2*time.Second || strings.Join(f.Section.Tags, ",") != "b,c" {
		t.Errorf("decoded %+v", f)
	}
	if len(f.Section.Per) != 2 || f.Section.Per["y"].Rate != 2 || f.Ptr == nil || f.Ptr.Rate != 3 {
		t.Errorf("maps add to the default, pointers are allocated: %+v %+v", f.Section.Per, f.Ptr)
	}
	if doc.Line("section.every") != 2 || doc.Line("section.per.y") != 5 || doc.Line("ptr") != 6 {
		t.Errorf("lines: %v", doc.Keys())
	}
}

func TestDecodeReportsEverythingAtOnce(t *testing.T) {
	data := "listenn: x\nsection:\n  rate: many\n  mode: maybe\n  every: soon\n  bogus: 1\nlist:\n  - {rate: 1}\n  - {rat: 2}\nmodes: [on, sideways]\nnested:\n  a:\n    c: 1\n"
	_, err := config.Decode("f.yaml", []byte(data), defaults())
	if err == nil {
		t.Fatal("no error")
	}
	want := []string{
		`f.yaml:1: listenn: unknown key (did you mean "listen"?)`,
		"f.yaml:3: section.rate: cannot use",
		`f.yaml:4: section.mode: "maybe" is not on or off`,
		"f.yaml:5: section.every:",
		"f.yaml:6: section.bogus: unknown key",
		`f.yaml:9: list[1].rat: unknown key (did you mean "list[1].rate"?)`,
		`f.yaml:10: modes[1]: "sideways" is not on or off`,
		"f.yaml:13: nested.a.c: unknown key",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[min(i, len(lines)-1)], w)
		}
	}
}

func TestDecodeSyntaxError(t *testing.T) {
	_, err := config.Decode("f.yaml", []byte("a: [\n"), defaults())
	if err == nil || !strings.HasPrefix(err.Error(), "f.yaml:") {
		t.Errorf("syntax error: %v", err)
	}
	if _, err := config.Decode("f.yaml", []byte("- a\n"), defaults()); err == nil {
		t.Error("a list at the top accepted")
	}
}

func TestAnnotate(t *testing.T) {
	doc, err := config.Decode("f.yaml", []byte("section:\n  rate: 0\n  tags: [a]\n"), defaults())
	if err != nil {
		t.Fatal(err)
	}
	verr := errors.Join(errors.New("rate: must be > 0"), errors.New("tags[0]: bad tag"), errors.New("no key in this one"),
		errors.New("section.every: named with its section"))
	got := doc.Annotate("section", verr).Error()
	for _, w := range []string{"f.yaml:2: section.rate: must be > 0", "f.yaml:3: section.tags[0]: bad tag",
		"f.yaml:1: section: no key in this one", "f.yaml:1: section.every: named with its section"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q lacks %q", got, w)
		}
	}
	if doc.Annotate("x", nil) != nil {
		t.Error("nil annotated")
	}
}

func TestSet(t *testing.T) {
	f := defaults()
	for k, v := range map[string]string{"listen": "true", "section.rate": "9", "section.every": "3s", "section.tags": " x, y ,", "section.mode": "off"} {
		if err := config.Set(f, k, v); err != nil {
			t.Fatal(k, err)
		}
	}
	if f.Listen != "true" || f.Section.Rate != 9 || f.Section.Every != 3*time.Second || strings.Join(f.Section.Tags, "|") != "x|y" || f.Section.Mode != "off" {
		t.Errorf("set: %+v", f)
	}
	for k, v := range map[string]string{"section.rate": "lots", "section.mode": "maybe", "nope": "1", "section.skip": "x"} {
		if err := config.Set(f, k, v); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}

func TestKeyPaths(t *testing.T) {
	got := strings.Join(config.KeyPaths(file{}), " ")
	for _, w := range []string{"listen", "section.rate", "section.every", "section.mode", "section.per.*.rate", "list[].every", "ptr.rate", "nested.a.b"} {
		if !strings.Contains(" "+got+" ", " "+w+" ") {
			t.Errorf("key paths lack %s: %s", w, got)
		}
	}
	if strings.Contains(got, "skip") {
		t.Errorf("yaml:\"-\" listed: %s", got)
	}
}

// TestDecodeAtOverridesAValueCopy: a Raw value is kept as written and
// decoded later over other values, strictly, with its keys' lines.
func TestDecodeAtOverridesAValueCopy(t *testing.T) {
	type inner struct {
		Limit int      `yaml:"limit"`
		Names []string `yaml:"names"`
		Mode  string   `yaml:"mode"`
	}
	type file struct {
		Base   inner `yaml:"base"`
		Routes []struct {
			Name      string     `yaml:"name"`
			Overrides config.Raw `yaml:"overrides"`
		} `yaml:"routes"`
	}
	src := "base:\n  limit: 5\n  names: [a, b]\n  mode: enforce\nroutes:\n  - name: one\n    overrides:\n      limit: 1\n      names: [c]\n  - name: two\n    overrides:\n      limitt: 2\n      mode: [x]\n  - name: three\n"
	var f file
	doc, err := config.Decode("f.yaml", []byte(src), &f)
	if err != nil {
		t.Fatal(err)
	}
	one := f.Base
	if err := doc.DecodeAt(f.Routes[0].Overrides, &one, "routes[0].overrides"); err != nil {
		t.Fatal(err)
	}
	if one.Limit != 1 || one.Mode != "enforce" || strings.Join(one.Names, ",") != "c" || f.Base.Limit != 5 || strings.Join(f.Base.Names, ",") != "a,b" {
		t.Errorf("override: %+v, base %+v", one, f.Base)
	}
	two := f.Base
	err = doc.DecodeAt(f.Routes[1].Overrides, &two, "routes[1].overrides")
	if err == nil {
		t.Fatal("bad override accepted")
	}
	for _, want := range []string{"f.yaml:12: routes[1].overrides.limitt", `did you mean "routes[1].overrides.limit"`, "f.yaml:13: routes[1].overrides.mode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	three := f.Base
	if err := doc.DecodeAt(f.Routes[2].Overrides, &three, "routes[2].overrides"); err != nil || three.Limit != 5 {
		t.Errorf("absent override: %+v, %v", three, err)
	}
}

// TestDurationsInDays: durations take a leading number of days.
func TestDurationsInDays(t *testing.T) {
	var v struct {
		A time.Duration `yaml:"a"`
		B time.Duration `yaml:"b"`
		C time.Duration `yaml:"c"`
	}
	if _, err := config.Decode("f", []byte("a: 7d\nb: 1d12h\nc: 90s\n"), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 7*24*time.Hour || v.B != 36*time.Hour || v.C != 90*time.Second {
		t.Errorf("%+v", v)
	}
	if _, err := config.Decode("f", []byte("a: 3dd\n"), &v); err == nil || !strings.Contains(err.Error(), "f:1: a:") {
		t.Errorf("bad days: %v", err)
	}
}

package normalize_test

import (
	"testing"

	"github.com/rampartgw/rampart/detections/normalize"
)

var benchInputs = []struct{ name, in string }{
	{"clean-token", "4035487b-f17c-47da-b417-d4b94043d7fe"},
	{"clean-text", "Levi's 501 original fit jeans, dark stonewash, size 32/34"},
	{"url-encoded", "https%3A%2F%2Fwww.example.com%2Fsearch%3Fq%3Drunning%2Bshoes%26page%3D2"},
	{"attack", "%253Cscript%253E&lt;img src=x onerror=\\u0061lert(1)&gt; %c0%ae%c0%ae%c0%af ＳＥＬＥＣＴ/**/1"},
}

func BenchmarkDecode(b *testing.B) {
	for _, bi := range benchInputs {
		b.Run(bi.name, func(b *testing.B) {
			var buf normalize.Buffer
			b.ReportAllocs()
			b.SetBytes(int64(len(bi.in)))
			for b.Loop() {
				buf.Decode(bi.in, true)
			}
		})
	}
}

func BenchmarkFold(b *testing.B) {
	for _, bi := range benchInputs {
		b.Run(bi.name, func(b *testing.B) {
			var buf normalize.Buffer
			d := append([]byte(nil), buf.Decode(bi.in, true)...)
			b.ReportAllocs()
			b.SetBytes(int64(len(d)))
			for b.Loop() {
				buf.Fold(d)
			}
		})
	}
}

// BenchmarkForms runs every form in turn, as the analyzers ask for them on
// a suspicious value.
func BenchmarkForms(b *testing.B) {
	for _, bi := range benchInputs {
		b.Run(bi.name, func(b *testing.B) {
			var buf normalize.Buffer
			b.ReportAllocs()
			b.SetBytes(int64(len(bi.in)))
			for b.Loop() {
				d := buf.Decode(bi.in, true)
				f := buf.Fold(d)
				buf.SQL(f)
				buf.Path(d)
				buf.Base64(d)
			}
		})
	}
}

package tlsfp

import "testing"

func BenchmarkCompute(b *testing.B) {
	h, err := Parse(vectorHello(b).records)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = Compute(h)
	}
}

func BenchmarkJA4(b *testing.B) {
	h, err := Parse(vectorHello(b).records)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = JA4(h)
	}
}

func BenchmarkParse(b *testing.B) {
	rec := vectorHello(b).records
	b.ReportAllocs()
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := Parse(rec); err != nil {
			b.Fatal(err)
		}
	}
}

package ipfeed

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// feed200k returns a 200,000-line netset: /24s and single addresses, as
// in FireHOL's larger lists.
func feed200k() []byte {
	r := rand.New(rand.NewPCG(9, 9))
	var b bytes.Buffer
	b.WriteString("# synthetic\n#\n")
	for i := range 200_000 {
		if i%3 == 0 {
			fmt.Fprintf(&b, "%d.%d.%d.0/24\n", 1+r.IntN(222), r.IntN(256), r.IntN(256))
			continue
		}
		fmt.Fprintf(&b, "%d.%d.%d.%d\n", 1+r.IntN(222), r.IntN(256), r.IntN(256), r.IntN(256))
	}
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	in := feed200k()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(in), ParseOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeSet(b *testing.B) {
	res, err := Parse(bytes.NewReader(feed200k()), ParseOptions{})
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := res.Set.MarshalBinary()
	b.Logf("%d ranges, %d bytes encoded", res.Set.Len(), len(enc))
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeSet(enc); err != nil {
			b.Fatal(err)
		}
	}
}

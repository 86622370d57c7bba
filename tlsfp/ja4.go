package tlsfp

import (
	"crypto/md5" //nolint:gosec // JA3 is defined as an MD5 digest.
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
)

// Which outputs build produces.
const (
	wantJA4 = 1 << iota
	wantJA4O
	wantJA3
	wantJA3N
	wantAll = wantJA4 | wantJA4O | wantJA3 | wantJA3N
)

// Indexes into the spans that build returns.
const (
	spanJA4 = iota
	spanJA4R
	spanJA4O
	spanJA4RO
	spanJA3
	spanJA3Hash
	spanJA3N
	spanJA3NHash
	nSpans
)

type span struct{ lo, hi int }

// zeros12 stands for an empty list in JA4_b and JA4_c (JA4.md "Cipher hash"
// and "Extension hash").
const zeros12 = "000000000000"

// stackLists is the capacity of the on-stack lists; longer hellos spill to
// the heap, which only costs an allocation.
const stackLists = 64

// build writes the requested fingerprints into one buffer, so that Compute
// needs a single allocation for all its strings.
func build(h *Hello, want int, buf []byte) ([]byte, [nSpans]span) {
	var spans [nSpans]span
	var cOrigA, cSortA, eOrigA, eSortA, sigA [stackLists]uint16
	cOrig := appendNonGREASE(cOrigA[:0], h.CipherSuites)
	eOrig := appendNonGREASE(eOrigA[:0], h.Extensions)

	if want&(wantJA4|wantJA4O) != 0 {
		cSort := append(cSortA[:0], cOrig...)
		slices.Sort(cSort)
		// JA4_c leaves out SNI and ALPN, already in JA4_a.
		eSort := eSortA[:0]
		for _, e := range eOrig {
			if e != extServerName && e != extALPN {
				eSort = append(eSort, e)
			}
		}
		slices.Sort(eSort)
		sigs := sigA[:0]
		for _, s := range h.SignatureSchemes {
			if !IsGREASE(uint16(s)) {
				sigs = append(sigs, uint16(s))
			}
		}
		a := ja4a(h, len(cOrig), len(eOrig))
		// FoxIO's reference output zeroes JA4_c whenever the sorted list
		// (without SNI and ALPN) is empty, in the original-order variant
		// too (vector https3-301-get: JA4_o ends in 000000000000 while
		// JA4_ro ends in _0000).
		noExts := len(eSort) == 0
		if want&wantJA4 != 0 {
			var hashed, raw span
			buf, hashed, raw = appendJA4(buf, &a, cSort, eSort, sigs, noExts)
			spans[spanJA4], spans[spanJA4R] = hashed, raw
		}
		if want&wantJA4O != 0 {
			var hashed, raw span
			buf, hashed, raw = appendJA4(buf, &a, cOrig, eOrig, sigs, noExts)
			spans[spanJA4O], spans[spanJA4RO] = hashed, raw
		}
	}
	if want&wantJA3 != 0 {
		buf, spans[spanJA3], spans[spanJA3Hash] = appendJA3(buf, h, cOrig, eOrig)
	}
	if want&wantJA3N != 0 {
		eSort := append(eSortA[:0], eOrig...)
		slices.Sort(eSort)
		buf, spans[spanJA3N], spans[spanJA3NHash] = appendJA3(buf, h, cOrig, eSort)
	}
	return buf, spans
}

func appendNonGREASE(dst, vs []uint16) []uint16 {
	for _, v := range vs {
		if !IsGREASE(v) {
			dst = append(dst, v)
		}
	}
	return dst
}

// ja4a builds JA4_a: transport, version, SNI, cipher and extension counts
// and ALPN (JA4.md "JA4 Algorithm").
func ja4a(h *Hello, nCiphers, nExts int) [10]byte {
	var a [10]byte
	a[0] = byte(h.Transport)
	if a[0] == 0 {
		a[0] = byte(TCP)
	}
	v := versionCode(maxVersion(h))
	a[1], a[2] = v[0], v[1]
	a[3] = 'i'
	if h.HasSNI() {
		a[3] = 'd'
	}
	a[4], a[5] = count2(nCiphers)
	a[6], a[7] = count2(nExts)
	a[8], a[9] = alpnChars(h.ALPN)
	return a
}

// versionCode maps a version to its two JA4 characters ("00" if unknown).
func versionCode(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	case 0xfeff:
		return "d1"
	case 0xfefd:
		return "d2"
	case 0xfefc:
		return "d3"
	}
	return "00"
}

// count2 formats n as two digits, capped at 99.
func count2(n int) (byte, byte) {
	n = min(n, 99)
	return byte('0' + n/10), byte('0' + n%10)
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

const hexDigits = "0123456789abcdef"

// alpnChars returns the JA4 ALPN characters of the first (non-GREASE) ALPN
// value: its first and last characters when both are ASCII alphanumeric,
// otherwise the first and last hex digits of its hex encoding; "00" when
// there is none or it is empty (JA4.md "ALPN Extension Value").
//
// FoxIO's reference implementations (python/ja4.py, rust/ja4, the Wireshark
// plugin) still print "99" for a non-ASCII first byte, an older rule; this
// follows the specification (see TestFoxIOVectors).
func alpnChars(alpn []string) (byte, byte) {
	for _, p := range alpn {
		if isGREASEALPN(p) {
			continue
		}
		if p == "" {
			return '0', '0'
		}
		first, last := p[0], p[len(p)-1]
		if isAlnum(first) && isAlnum(last) {
			return first, last
		}
		return hexDigits[first>>4], hexDigits[last&0x0f]
	}
	return '0', '0'
}

func appendHexList(buf []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, hexDigits[v>>12], hexDigits[v>>8&0xf], hexDigits[v>>4&0xf], hexDigits[v&0xf])
	}
	return buf
}

// appendJA4 appends the raw form a_ciphers_exts[_sigs] and then the hashed
// form a_sha12(ciphers)_sha12(exts[_sigs]); an empty list hashes to zeros.
func appendJA4(buf []byte, a *[10]byte, ciphers, exts, sigs []uint16, noExts bool) ([]byte, span, span) {
	raw := span{lo: len(buf)}
	buf = append(buf, a[:]...)
	buf = append(buf, '_')
	cLo := len(buf)
	buf = appendHexList(buf, ciphers)
	cHi := len(buf)
	buf = append(buf, '_')
	eLo := len(buf)
	buf = appendHexList(buf, exts)
	if len(sigs) > 0 {
		buf = append(buf, '_')
		buf = appendHexList(buf, sigs)
	}
	raw.hi = len(buf)
	cSum := sha256.Sum256(buf[cLo:cHi])
	eSum := sha256.Sum256(buf[eLo:raw.hi])

	hashed := span{lo: len(buf)}
	buf = append(buf, a[:]...)
	buf = append(buf, '_')
	if len(ciphers) == 0 {
		buf = append(buf, zeros12...)
	} else {
		buf = hex.AppendEncode(buf, cSum[:6])
	}
	buf = append(buf, '_')
	if noExts {
		buf = append(buf, zeros12...)
	} else {
		buf = hex.AppendEncode(buf, eSum[:6])
	}
	hashed.hi = len(buf)
	return buf, hashed, raw
}

func appendDecList(buf []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			buf = append(buf, '-')
		}
		buf = strconv.AppendUint(buf, uint64(v), 10)
	}
	return buf
}

// appendJA3 appends SSLVersion,Ciphers,Extensions,EllipticCurves,
// EllipticCurvePointFormats (decimal, '-' separated, GREASE removed; see
// salesforce/ja3 README) and then its MD5 in hex.
func appendJA3(buf []byte, h *Hello, ciphers, exts []uint16) ([]byte, span, span) {
	s := span{lo: len(buf)}
	buf = strconv.AppendUint(buf, uint64(h.Version), 10)
	buf = append(buf, ',')
	buf = appendDecList(buf, ciphers)
	buf = append(buf, ',')
	buf = appendDecList(buf, exts)
	buf = append(buf, ',')
	first := true
	for _, c := range h.SupportedCurves {
		if IsGREASE(uint16(c)) {
			continue
		}
		if !first {
			buf = append(buf, '-')
		}
		first = false
		buf = strconv.AppendUint(buf, uint64(c), 10)
	}
	buf = append(buf, ',')
	for i, p := range h.SupportedPoints {
		if i > 0 {
			buf = append(buf, '-')
		}
		buf = strconv.AppendUint(buf, uint64(p), 10)
	}
	s.hi = len(buf)
	sum := md5.Sum(buf[s.lo:s.hi]) //nolint:gosec // JA3 is defined as an MD5 digest.
	hs := span{lo: len(buf)}
	buf = hex.AppendEncode(buf, sum[:])
	hs.hi = len(buf)
	return buf, s, hs
}

func buildString(h *Hello, want int) (string, [nSpans]span) {
	var stack [1024]byte
	buf, spans := build(h, want, stack[:0])
	return string(buf), spans
}

func (s span) of(str string) string { return str[s.lo:s.hi] }

// JA4 returns the JA4 fingerprint, e.g. t13d1516h2_8daaf6152771_e5627efa2ab1.
func JA4(h Hello) string {
	s, sp := buildString(&h, wantJA4)
	return sp[spanJA4].of(s)
}

// JA4R returns JA4_r: JA4 with the sorted lists in clear.
func JA4R(h Hello) string {
	s, sp := buildString(&h, wantJA4)
	return sp[spanJA4R].of(s)
}

// JA4O returns JA4_o: JA4 hashed over the lists in wire order, SNI and ALPN
// kept among the extensions.
func JA4O(h Hello) string {
	s, sp := buildString(&h, wantJA4O)
	return sp[spanJA4O].of(s)
}

// JA4RO returns JA4_ro: the lists of JA4_o in clear.
func JA4RO(h Hello) string {
	s, sp := buildString(&h, wantJA4O)
	return sp[spanJA4RO].of(s)
}

// JA3 returns the JA3 string and its MD5 hash (lowercase hex).
func JA3(h Hello) (full, hash string) {
	s, sp := buildString(&h, wantJA3)
	return sp[spanJA3].of(s), sp[spanJA3Hash].of(s)
}

// JA3N returns JA3n (JA3 with the extensions sorted, stable against
// extension-order randomisation) and its MD5 hash.
func JA3N(h Hello) (full, hash string) {
	s, sp := buildString(&h, wantJA3N)
	return sp[spanJA3N].of(s), sp[spanJA3NHash].of(s)
}

package payload

// Byte classes of a decoded value. Input.Classes computes their union once
// per field; every analyzer first checks that the characters its attack
// cannot do without are present, so clean values (ids, words, numbers)
// cost each analyzer a mask test. Digits have no class; letters have
// clsUpper (A-Z), clsX (x, X) and one bit per letter of either case
// (letter), so an analyzer that needs the word "java" skips every value
// without a 'j' and a 'v'. A new class of letters must be added to
// b64Classes, the one check of the form "nothing but these classes".
const (
	clsQuote      uint64 = 1 << iota // ' " `
	clsLT                            // <
	clsGT                            // >
	clsParen                         // ( )
	clsSemi                          // ;
	clsPipe                          // |
	clsAmp                           // &
	clsDollar                        // $
	clsBrace                         // { }
	clsBracket                       // [ ]
	clsPercent                       // %
	clsBackslash                     // \
	clsSlash                         // /
	clsDot                           // .
	clsColon                         // :
	clsEq                            // =
	clsHash                          // #
	clsStar                          // *
	clsDash                          // -
	clsAt                            // @
	clsSpace                         // space, tab
	clsNewline                       // CR, LF
	clsControl                       // other control bytes, DEL
	clsHigh                          // bytes >= 0x80
	clsBang                          // !
	clsComma                         // ,
	clsUnderscore                    // _
	clsPlus                          // +
	clsQuestion                      // ?
	clsTilde                         // ~
	clsCaret                         // ^
	clsUpper                         // A-Z
	clsTab                           // tab, vertical tab, form feed
	clsX                             // x X: "0x2e" hex spellings
	clsLetterA                       // the first of 26 bits, one per letter a-z of either case
)

// letter returns the class bit of the ASCII letter c (either case).
func letter(c byte) uint64 { return clsLetterA << ((c | 0x20) - 'a') }

// letters returns the class bits of every letter of w.
func letters(w string) uint64 {
	var m uint64
	for i := 0; i < len(w); i++ {
		if isLetter(w[i]) {
			m |= letter(w[i])
		}
	}
	return m
}

// foldedClasses is Classes for tests on the folded form: NFKC folds
// fullwidth and compatibility characters (any byte >= 0x80) into ASCII
// letters and symbols, so a value with such bytes may hold every class
// once folded.
func (in *Input) foldedClasses() uint64 {
	if in.classes&clsHigh != 0 {
		return ^uint64(0)
	}
	return in.classes
}

// clsLetters is the union of the letter bits.
const clsLetters = (clsLetterA<<26 - 1) &^ (clsLetterA - 1)

var classTable = func() (t [256]uint64) {
	set := func(chars string, c uint64) {
		for i := 0; i < len(chars); i++ {
			t[chars[i]] |= c
		}
	}
	set("'\"`", clsQuote)
	set("<", clsLT)
	set(">", clsGT)
	set("()", clsParen)
	set(";", clsSemi)
	set("|", clsPipe)
	set("&", clsAmp)
	set("$", clsDollar)
	set("{}", clsBrace)
	set("[]", clsBracket)
	set("%", clsPercent)
	set("\\", clsBackslash)
	set("/", clsSlash)
	set(".", clsDot)
	set(":", clsColon)
	set("=", clsEq)
	set("#", clsHash)
	set("*", clsStar)
	set("-", clsDash)
	set("@", clsAt)
	set(" \t", clsSpace)
	set("\t\v\f", clsTab)
	set("xX", clsX)
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= clsUpper
		t[c] |= clsLetterA << (c - 'A')
		t[c+'a'-'A'] |= clsLetterA << (c - 'A')
	}
	set("\r\n", clsNewline)
	set("!", clsBang)
	set(",", clsComma)
	set("_", clsUnderscore)
	set("+", clsPlus)
	set("?", clsQuestion)
	set("~", clsTilde)
	set("^", clsCaret)
	for c := 0; c < 0x20; c++ {
		if c != '\r' && c != '\n' && c != '\t' && c != '\v' && c != '\f' {
			t[c] |= clsControl
		}
	}
	t[0x7f] |= clsControl
	for c := 0x80; c < 0x100; c++ {
		t[c] |= clsHigh
	}
	return t
}()

// byteClasses ORs the classes of b's bytes. Four accumulators break the
// dependency chain of a single one, so the loads overlap.
func byteClasses(b []byte) uint64 {
	var m0, m1, m2, m3 uint64
	for len(b) >= 4 {
		m0 |= classTable[b[0]]
		m1 |= classTable[b[1]]
		m2 |= classTable[b[2]]
		m3 |= classTable[b[3]]
		b = b[4:]
	}
	for _, c := range b {
		m0 |= classTable[c]
	}
	return m0 | m1 | m2 | m3
}

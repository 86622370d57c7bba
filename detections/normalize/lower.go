package normalize

import "unicode"

func unicodeLower(r rune) rune { return unicode.ToLower(r) }

package normalize

// SQL returns folded (the result of Fold) with SQL comments taken out, the
// form in which keyword sequences such as "union select" are matched:
// "/**/" and other block comments become a space, MySQL's executable
// comments ("/*!50000select*/") keep their content, and a "--" line
// comment is dropped to the end of the value (Fold has already turned
// newlines into spaces). Space runs are collapsed again afterwards. The
// result is valid until the next call of SQL.
func (b *Buffer) SQL(folded []byte) []byte {
	src := folded
	if len(src) > MaxInput {
		src = src[:MaxInput]
	}
	dst := b.sql[:0]
	space := func() {
		if len(dst) > 0 && dst[len(dst)-1] != ' ' {
			dst = append(dst, ' ')
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			if i+2 < len(src) && src[i+2] == '!' {
				// Executable comment: drop the marker and the version.
				j := i + 3
				for j < len(src) && j-i-3 < 6 && src[j] >= '0' && src[j] <= '9' {
					j++
				}
				space()
				i = j - 1
				continue
			}
			end := indexFrom(src, i+2, '*', '/')
			space()
			if end < 0 {
				i = len(src)
				continue
			}
			i = end + 1
			continue
		case c == '*' && i+1 < len(src) && src[i+1] == '/':
			// The close of an executable comment.
			space()
			i++
			continue
		case c == '-' && i+1 < len(src) && src[i+1] == '-' && (i+2 == len(src) || src[i+2] == ' '):
			i = len(src)
			continue
		case c == ' ':
			space()
			continue
		}
		dst = append(dst, c)
	}
	for len(dst) > 0 && dst[len(dst)-1] == ' ' {
		dst = dst[:len(dst)-1]
	}
	b.sql = dst
	return dst
}

// indexFrom returns the index of the first "xy" in s at or after from, or -1.
func indexFrom(s []byte, from int, x, y byte) int {
	for i := from; i+1 < len(s); i++ {
		if s[i] == x && s[i+1] == y {
			return i
		}
	}
	return -1
}

package sqlcap

// singleStatement reports whether text holds at most one SQLite
// statement: nothing but blanks and comments after the first ';' that is
// outside a string literal, a quoted identifier and a comment.
//
// PostgreSQL refuses more than one statement itself (the extended
// protocol takes one); the SQLite driver instead runs every statement of a
// text, one after the other, and its API does not show where the first
// one ends. So for SQLite the text is scanned by SQLite's own lexical
// rules for the tokens that can hold a ';' — '…' strings, "…", `…` and
// […] identifiers, -- and /* */ comments — and anything after the first
// statement is refused. The one statement form this refuses that SQLite
// accepts is CREATE TRIGGER, whose body holds statements of its own.
func singleStatement(text string) bool {
	end := statementEnd(text)
	if end < 0 {
		return true
	}
	return blank(text[end+1:])
}

// statementEnd returns the index of the first ';' outside literals,
// quoted identifiers and comments, or -1.
func statementEnd(s string) int {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ';':
			return i
		case '\'', '"', '`':
			j := closing(s, i+1, c)
			if j < 0 {
				return -1
			}
			i = j
		case '[':
			j := closing(s, i+1, ']')
			if j < 0 {
				return -1
			}
			i = j
		case '-':
			if i+1 < len(s) && s[i+1] == '-' {
				i = lineEnd(s, i+2)
			}
		case '/':
			if i+1 < len(s) && s[i+1] == '*' {
				i = commentEnd(s, i+2)
			}
		}
	}
	return -1
}

// closing returns the index of the quote q that closes a literal begun
// before i; a doubled quote inside stands for itself. -1 if none does.
func closing(s string, i int, q byte) int {
	for ; i < len(s); i++ {
		if s[i] == q {
			if q != ']' && i+1 < len(s) && s[i+1] == q {
				i++
				continue
			}
			return i
		}
	}
	return -1
}

func lineEnd(s string, i int) int {
	for ; i < len(s); i++ {
		if s[i] == '\n' {
			return i
		}
	}
	return len(s)
}

// commentEnd returns the index of the '/' that ends a /* comment begun
// before i, or the end of s: an unterminated comment runs to the end.
func commentEnd(s string, i int) int {
	for ; i+1 < len(s); i++ {
		if s[i] == '*' && s[i+1] == '/' {
			return i + 1
		}
	}
	return len(s)
}

// blank reports whether s holds only white space, comments and ';'.
func blank(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\r', '\f', '\v', ';':
		case '-':
			if i+1 < len(s) && s[i+1] == '-' {
				i = lineEnd(s, i+2)
				continue
			}
			return false
		case '/':
			if i+1 < len(s) && s[i+1] == '*' {
				i = commentEnd(s, i+2)
				continue
			}
			return false
		default:
			return false
		}
	}
	return true
}

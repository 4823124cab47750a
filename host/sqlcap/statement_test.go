package sqlcap

import "testing"

func TestSingleStatement(t *testing.T) {
	for _, c := range []struct {
		text string
		one  bool
	}{
		{"SELECT 1", true},
		{"SELECT 1;", true},
		{"SELECT 1; ", true},
		{"SELECT 1; -- done", true},
		{"SELECT 1; /* done */ ;", true},
		{"SELECT ';'", true},
		{"SELECT 'a'';'", true},
		{`SELECT 1 AS ";"`, true},
		{"SELECT 1 AS `;`", true},
		{"SELECT 1 AS [;]", true},
		{"SELECT 1 -- ;\n", true},
		{"SELECT 1 /* ; */", true},
		{"SELECT 'unterminated;", true}, // SQLite refuses it
		{"SELECT 1; SELECT 2", false},
		{"SELECT 1;SELECT 2;", false},
		{"SELECT 'a'';'; DELETE FROM t", false},
		{"SELECT 1 -- x\n; DELETE FROM t", false},
		{"SELECT 1 /* x */; DELETE FROM t", false},
		{"SELECT 1; /* x */ DELETE FROM t", false},
		{"SELECT 1; -", false},
		{"SELECT 1; /", false},
		{"SELECT 1 AS [a;b]; DELETE FROM t", false},
	} {
		if got := singleStatement(c.text); got != c.one {
			t.Errorf("singleStatement(%q) = %v, want %v", c.text, got, c.one)
		}
	}
}

func FuzzSingleStatement(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT ';'; x", "/* ; */ -- \n;", "[;", "'';'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if singleStatement(s) && singleStatement(s+"; SELECT 1") {
			// Appending a statement to a text that ends outside any
			// literal or comment must make it two.
			if end := statementEnd(s + ";"); end == len(s) {
				t.Errorf("%q + a statement still counts as one", s)
			}
		}
	})
}

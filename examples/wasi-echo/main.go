// Command wasi-echo is a plain WASI command, with no blockhost SDK: it
// reads standard input, writes it upper-cased to standard output and a
// line to standard error, and exits with code 3 when standard input is
// empty, to show how the host reports a non-zero exit.
package main

import (
	"bufio"
	"io"
	"os"
	"unicode"
)

func main() {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	n := 0
	for {
		r, size, err := in.ReadRune()
		if err == io.EOF {
			break
		}
		if err != nil {
			io.WriteString(os.Stderr, "wasi-echo: reading stdin: "+err.Error()+"\n")
			os.Exit(1)
		}
		n += size
		out.WriteRune(unicode.ToUpper(r))
	}
	if err := out.Flush(); err != nil {
		io.WriteString(os.Stderr, "wasi-echo: writing stdout: "+err.Error()+"\n")
		os.Exit(1)
	}
	if n == 0 {
		io.WriteString(os.Stderr, "wasi-echo: stdin is empty\n")
		os.Exit(3)
	}
	io.WriteString(os.Stderr, "wasi-echo: done\n")
}

package fscap_test

import (
	"io"

	"github.com/hashicorp/go-hclog"
)

func newJSONLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: w, JSONFormat: true, Level: hclog.Trace})
}

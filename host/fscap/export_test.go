package fscap

import "github.com/hashicorp/go-hclog"

// ClassifyForTest wraps an error from package os as an operation would.
func ClassifyForTest(err error) error {
	o := &op{name: "test", path: "/test", s: &Session{log: newOpLog(nullLogger())}}
	return o.end(err)
}

func nullLogger() hclog.Logger { return hclog.NewNullLogger() }

// ToWASI is toWASI, for the errno tests.
var ToWASI = toWASI

package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
)

// An ABI block's input may take half the memory limit; one byte more is
// refused before the guest runs, naming the flag that raises the limit.
// A WASI command streams its input and is not bound by the rule.
func TestBlock_inputOverMemoryShare(t *testing.T) {
	rt := newRuntime(t)
	echo := load(t, rt, "echo") // 2 pages of memory: 128 KiB
	lim := host.Limits{Memory: 128 << 10}
	share := int(lim.Memory / host.InputMemoryShare)

	res := echo.Run(context.Background(), host.Step{Input: bytes.Repeat([]byte("a"), share), Limits: lim})
	if res.Status != abi.StatusSuccess || res.OutputText == nil || len(*res.OutputText) != share {
		t.Fatalf("input of exactly 1/%d of the memory limit: got %s %v, want success echoing it", host.InputMemoryShare, res.Status, res.Error)
	}

	res = echo.Run(context.Background(), host.Step{Input: bytes.Repeat([]byte("a"), share+1), Limits: lim})
	if res.Status != abi.StatusError || res.Error.Code != abi.CodeQuotaExceeded || res.Error.Class != abi.ClassPermanent {
		t.Fatalf("input one byte over: got %s %+v, want error quota_exceeded permanent", res.Status, res.Error)
	}
	for _, want := range []string{"needs more memory than the memory limit of 128 KiB", "--memory", "limits { memory"} {
		if !strings.Contains(res.Error.Message, want) {
			t.Errorf("message %q does not say %q", res.Error.Message, want)
		}
	}
	if res.Usage.HostCalls != 0 || res.Usage.BytesIn != uint64(share+1) {
		t.Errorf("usage %+v: want no host calls (the guest never ran) and bytes_in %d", res.Usage, share+1)
	}

	// Cancellation comes first in the order of deciding (docs/abi.md §6).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = echo.Run(ctx, host.Step{Input: bytes.Repeat([]byte("a"), share+1), Limits: lim})
	if res.Status != abi.StatusCancelled {
		t.Errorf("cancelled step with input over the share: %s %+v, want cancelled", res.Status, res.Error)
	}

	cmd := load(t, rt, "wasiecho") // reads at most 4 KiB of standard input
	res = cmd.Run(context.Background(), host.Step{Input: bytes.Repeat([]byte("a"), share+1), Limits: lim})
	if res.Status != abi.StatusSuccess {
		t.Errorf("WASI command with input over the share: got %s %+v, want success", res.Status, res.Error)
	}
}

// A guest's stack trace on stderr is one record with a line count, not a
// record per line; the lines before it are logged as usual.
func TestBlock_stackTraceNotLogged(t *testing.T) {
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, JSONFormat: true, Level: hclog.Info})
	rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(context.Background()) })
	res := load(t, rt, "tracedump").Run(context.Background(), host.Step{})
	if res.Status != abi.StatusError {
		t.Fatalf("status %s, want error (exit code 2)", res.Status)
	}

	var msgs []string
	var count float64
	for line := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := rec["@message"].(string)
		msgs = append(msgs, msg)
		if msg == "guest stack trace not logged" {
			count, _ = rec["lines"].(float64)
		}
	}
	want := []string{
		"runtime: out of memory: cannot allocate 1048576-byte block",
		"fatal error: out of memory",
		"guest stack trace not logged",
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Errorf("log messages:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
	if count != 7 {
		t.Errorf("lines = %v, want 7 (blank lines are not counted)", count)
	}
}

package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// snapOutput is what host/testdata/snapblock reports of each step.
type snapOutput struct {
	Counter   int    `json:"counter"`
	InitValue int64  `json:"init_value"`
	Crypto    string `json:"crypto"`
	Math      int64  `json:"math"`
	MathV2    int64  `json:"math_v2"`
	Big       int    `json:"big"`
}

// forEachSnapEngine runs f on every engine with a runtime configured by
// cfg, whose warnings go to logs. Every snapshot test's runtime uses one
// cache directory, so that the block and its capture module are compiled
// once per engine: under the race detector, compiling a Go module takes
// seconds. Images are cached by block name, and tests use names of their
// own where that matters.
func forEachSnapEngine(t *testing.T, cfg func(eng string, c host.RuntimeConfig) host.RuntimeConfig,
	f func(t *testing.T, rt *host.Runtime, logs *syncBuffer)) {
	t.Helper()
	for _, name := range engine.Names() {
		t.Run(name, func(t *testing.T) {
			logs := &syncBuffer{}
			c := host.NewRuntimeConfig().WithEngine(name).WithCacheDir(testwasm.SharedDir(t, "snapshot-cache")).
				WithLogger(hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn}))
			if cfg != nil {
				c = cfg(name, c)
			}
			rt, err := host.NewRuntime(context.Background(), c)
			if errors.Is(err, engine.ErrUnavailable) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { rt.Close(context.Background()) })
			f(t, rt, logs)
		})
	}
}

func snapStep(t *testing.T, b *host.Block, step host.Step) snapOutput {
	t.Helper()
	if step.Input == nil {
		step.Input = []byte(`{}`)
	}
	res := b.Run(context.Background(), step)
	if res.Status != abi.StatusSuccess {
		t.Fatalf("step of %s: %s %+v", b.Name(), res.Status, res.Error)
	}
	var out snapOutput
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("step of %s: output %s: %v", b.Name(), res.Output, err)
	}
	return out
}

func loadSnap(t *testing.T, rt *host.Runtime, name string) *host.Block {
	t.Helper()
	b, err := rt.Load(context.Background(), name, testwasm.GoReactor(t, filepath.Join("testdata", "snapblock")))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Steps of one image each get a fresh instance: nothing one step does is
// seen by the next; crypto/rand and math/rand (re-seeded by the SDK) give
// each step values of its own; what initialisation drew, and math/rand/v2,
// whose source is the Go runtime's, are the image's and so the same in
// every step (docs/security.md, "Snapshots").
func TestSnapshot_stepsAreIsolatedAndReseeded(t *testing.T) {
	forEachSnapEngine(t, nil, func(t *testing.T, rt *host.Runtime, logs *syncBuffer) {
		b := loadSnap(t, rt, "snapblock")
		if !b.UsesSnapshot() {
			t.Fatalf("a Go reactor built with the SDK has no snapshot; log:\n%s", logs)
		}
		a, c := snapStep(t, b, host.Step{}), snapStep(t, b, host.Step{})
		if a.Counter != 1 || c.Counter != 1 {
			t.Errorf("counters %d and %d: a step saw another's state", a.Counter, c.Counter)
		}
		if a.Crypto == c.Crypto {
			t.Errorf("crypto/rand gave two steps of one image the same bytes %s", a.Crypto)
		}
		if a.Math == c.Math {
			t.Errorf("math/rand gave two steps of one image the same value %d: not re-seeded", a.Math)
		}
		if a.InitValue != c.InitValue {
			t.Errorf("values drawn at initialisation differ (%d, %d): the steps did not start from one image", a.InitValue, c.InitValue)
		}
		if a.MathV2 != c.MathV2 {
			t.Errorf("math/rand/v2 gave two steps of one image %d and %d: docs/security.md says they are the same; update it", a.MathV2, c.MathV2)
		}
		if logs.String() != "" {
			t.Errorf("warnings:\n%s", logs)
		}

		// Steps of one image at once: each in its own instance.
		results := make([]*abi.StepResult, 8)
		var wg sync.WaitGroup
		for i := range results {
			wg.Go(func() { results[i] = b.Run(context.Background(), host.Step{Input: []byte(`{}`)}) })
		}
		wg.Wait()
		seen := map[string]bool{}
		for _, res := range results {
			var o snapOutput
			if err := json.Unmarshal(res.Output, &o); res.Status != abi.StatusSuccess || err != nil {
				t.Fatalf("concurrent step: %s %s %+v", res.Status, res.Output, res.Error)
			}
			if o.Counter != 1 || seen[o.Crypto] {
				t.Errorf("concurrent steps: counter %d, crypto %s seen before: %v", o.Counter, o.Crypto, seen[o.Crypto])
			}
			seen[o.Crypto] = true
		}

		// A step that initialisation would have seen differently — with
		// arguments, environment variables, or a memory limit below the
		// image — runs the module as it is, _initialize included.
		for name, step := range map[string]host.Step{
			"args":   {Args: []string{"x"}},
			"env":    {Grants: host.Grants{Env: map[string]string{"A": "1"}}},
			"memory": {Limits: host.Limits{Memory: 1 << 20}},
		} {
			step.Input = []byte(`{}`)
			res := b.Run(context.Background(), step)
			if name == "memory" {
				// The module itself needs more than 1 MiB: the step fails as
				// it would without snapshots, naming the module's memory.
				if res.Status != abi.StatusError || res.Error.Code != abi.CodeQuotaExceeded ||
					!strings.Contains(res.Error.Message, "module's initial memory") {
					t.Errorf("%s: %s %+v", name, res.Status, res.Error)
				}
				continue
			}
			if res.Status != abi.StatusSuccess {
				t.Fatalf("%s: %s %+v", name, res.Status, res.Error)
			}
			var out snapOutput
			json.Unmarshal(res.Output, &out)
			if out.InitValue == a.InitValue {
				t.Errorf("%s: the step started from the image", name)
			}
		}
	})
}

// Initialisation that calls a host function, writes to a standard stream,
// exits or needs more than the runtime's memory limit leaves the block
// without a snapshot, with one warning saying why; its steps run as they
// would without snapshots.
func TestSnapshot_fallback(t *testing.T) {
	tests := []struct {
		name, reason string
		check        func(t *testing.T, res *abi.StepResult)
	}{
		{"initlog", "called a blockhost host function", nil},
		{"initstderr", "wrote to standard output or error", nil},
		{"initexit", "exited with code 3", func(t *testing.T, res *abi.StepResult) {
			if res.Status != abi.StatusError || res.Error.ExitCode == nil || *res.Error.ExitCode != 3 {
				t.Errorf("step: %s %+v, want exit code 3", res.Status, res.Error)
			}
		}},
		{"initbig", "more than the memory limit of 16 MiB", nil},
	}
	forEachSnapEngine(t, func(_ string, c host.RuntimeConfig) host.RuntimeConfig {
		return c.WithLimits(host.Limits{Memory: 16 << 20})
	}, func(t *testing.T, rt *host.Runtime, logs *syncBuffer) {
		for _, tt := range tests {
			b := loadSnap(t, rt, tt.name)
			if b.UsesSnapshot() {
				t.Errorf("%s: snapshot taken", tt.name)
			}
			res := b.Run(context.Background(), host.Step{Input: []byte(`{}`), Limits: host.Limits{Memory: 64 << 20}})
			if tt.check != nil {
				tt.check(t, res)
			} else if res.Status != abi.StatusSuccess {
				t.Errorf("%s: step %s %+v", tt.name, res.Status, res.Error)
			}
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		for _, tt := range tests {
			n := 0
			for _, l := range lines {
				if strings.Contains(l, "no snapshot after initialisation") && strings.Contains(l, "block="+tt.name+" ") {
					n++
					if !strings.Contains(l, tt.reason) {
						t.Errorf("%s: warning does not say %q: %s", tt.name, tt.reason, l)
					}
				}
			}
			if n != 1 {
				t.Errorf("%s: %d warnings, want 1; log:\n%s", tt.name, n, logs)
			}
		}
	})
}

// Without snapshots every step initialises: a value drawn then differs.
func TestSnapshot_off(t *testing.T) {
	forEachSnapEngine(t, func(_ string, c host.RuntimeConfig) host.RuntimeConfig { return c.WithSnapshots(false) },
		func(t *testing.T, rt *host.Runtime, _ *syncBuffer) {
			b := loadSnap(t, rt, "snapblock")
			if b.UsesSnapshot() {
				t.Fatal("snapshot taken with snapshots off")
			}
			if a, c := snapStep(t, b, host.Step{}), snapStep(t, b, host.Step{}); a.InitValue == c.InitValue {
				t.Errorf("two initialisations drew the same value %d", a.InitValue)
			}
		})
}

// The image is kept on disk beside the compiled code: another runtime
// with the same directory starts from the same image. A damaged entry is
// refused with a warning, the snapshot taken afresh and the entry
// replaced.
func TestSnapshot_diskCache(t *testing.T) {
	for _, eng := range engine.Names() {
		t.Run(eng, func(t *testing.T) {
			dir := testwasm.SharedDir(t, "snapshot-cache")
			initValue := func(wantWarning string) int64 {
				t.Helper()
				logs := &syncBuffer{}
				rt, err := host.NewRuntime(context.Background(), host.NewRuntimeConfig().WithEngine(eng).WithCacheDir(dir).
					WithLogger(hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})))
				if errors.Is(err, engine.ErrUnavailable) {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer rt.Close(context.Background())
				b := loadSnap(t, rt, "snapdisk")
				if !b.UsesSnapshot() {
					t.Fatalf("no snapshot; log:\n%s", logs)
				}
				if got := logs.String(); wantWarning == "" && got != "" || !strings.Contains(got, wantWarning) {
					t.Errorf("log %q, want a warning saying %q", got, wantWarning)
				}
				return snapStep(t, b, host.Step{}).InitValue
			}
			first := initValue("")
			if again := initValue(""); again != first {
				t.Fatalf("a second runtime did not start from the image on disk (%d, %d)", first, again)
			}
			entries := snapEntries(t, dir, eng, "snapdisk")
			if len(entries) != 1 {
				t.Fatalf("snapshot entries for snapdisk %v, want one", entries)
			}
			data, err := os.ReadFile(entries[0])
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x55
			if err := os.WriteFile(entries[0], data, 0o600); err != nil {
				t.Fatal(err)
			}
			fresh := initValue("checksum mismatch")
			if fresh == first {
				t.Errorf("a damaged entry's image was used")
			}
			if again := initValue(""); again != fresh {
				t.Errorf("the damaged entry was not replaced (%d, %d)", fresh, again)
			}
		})
	}
}

// snapEntries returns the engine's snapshot entries for images initialised
// as name: their payload starts with the name, quoted, on a line of its own
// (docs/engines.md, "Snapshots").
func snapEntries(t *testing.T, dir, eng, name string) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(dir, "blockhost-snapshot-"+eng+"-*", "*.entry"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, path := range all {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The entry: payload, then key and length lines.
		if line, _, ok := bytes.Cut(data, []byte("\n")); ok && string(line) == strconv.Quote(name) {
			out = append(out, path)
		}
	}
	return out
}

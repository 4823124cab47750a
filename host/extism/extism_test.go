package extism

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

var module = HostModule()

// call runs the host function name for c with args, and returns the
// stack it left and the trap it stopped the guest with, if any.
func call(t *testing.T, ctx context.Context, c *Call, name string, args ...uint64) (stack []uint64, trap *engine.Trap) {
	t.Helper()
	i := slices.IndexFunc(module.Functions, func(f engine.HostFunction) bool { return f.Name == name })
	if i < 0 {
		t.Fatalf("no host function %s", name)
	}
	f := module.Functions[i]
	stack = make([]uint64, max(len(f.Signature.Params), len(f.Signature.Results), 1))
	copy(stack, args)
	defer func() {
		if p := recover(); p != nil {
			tr, ok := p.(*engine.Trap)
			if !ok {
				t.Fatalf("%s panicked with %v, not an *engine.Trap", name, p)
			}
			trap = tr
		}
	}()
	if c != nil {
		ctx = WithCall(ctx, c)
	}
	f.Func(ctx, nil, stack)
	return stack, nil
}

// put makes a block holding s.
func put(t *testing.T, c *Call, s string) uint64 {
	t.Helper()
	off, ok := c.blocks.put([]byte(s))
	if !ok {
		t.Fatalf("put %q failed", s)
	}
	return off
}

func TestHostModule_matchesFunctions(t *testing.T) {
	if len(module.Functions) != len(Functions) {
		t.Fatalf("%d host functions, %d in Functions", len(module.Functions), len(Functions))
	}
	for _, f := range module.Functions {
		sig, ok := Functions[f.Name]
		if !ok || !slices.Equal(sig.Params, f.Signature.Params) || !slices.Equal(sig.Results, f.Signature.Results) {
			t.Errorf("%s: signature %v, Functions has %v", f.Name, f.Signature, sig)
		}
	}
}

func TestBlockStore(t *testing.T) {
	s := blockStore{limit: 64}
	a, ok := s.alloc(3)
	if !ok || a == 0 || a%blockAlign != 0 || s.length(a) != 3 {
		t.Fatalf("alloc(3) = %d, %v; length %d", a, ok, s.length(a))
	}
	b, _ := s.alloc(8)
	if b <= a || b%blockAlign != 0 {
		t.Fatalf("second block at %d, first at %d", b, a)
	}
	if z, ok := s.alloc(0); z != 0 || !ok {
		t.Errorf("alloc(0) = %d, %v; want 0, true", z, ok)
	}
	// Freeing a block below the top keeps it for reuse; the top one gives
	// its space back.
	s.release(a)
	if s.length(a) != 0 {
		t.Errorf("freed block still has length %d", s.length(a))
	}
	if c, _ := s.alloc(2); c != a {
		t.Errorf("alloc after free = %d, want the freed %d", c, a)
	}
	top := uint64(len(s.arena))
	s.release(b)
	if uint64(len(s.arena)) >= top {
		t.Errorf("freeing the top block left the arena at %d bytes", len(s.arena))
	}
	// The cap: 64 bytes of blocks.
	if _, ok := s.alloc(65); ok {
		t.Error("a block past the cap was allocated")
	}
	if _, ok := s.span(uint64(len(s.arena)), 1); ok {
		t.Error("a span past the arena is in bounds")
	}
	if _, ok := s.span(0, 1); ok {
		t.Error("offset 0 is in bounds")
	}
	s.reset()
	if d, _ := s.alloc(1); d != blockAlign {
		t.Errorf("after reset the first block is at %d, want %d", d, blockAlign)
	}
}

func TestCall_input(t *testing.T) {
	c := NewCall(CallConfig{Input: []byte("0123456789")})
	ctx := context.Background()
	if st, _ := call(t, ctx, c, "input_length"); st[0] != 10 {
		t.Errorf("input_length = %d", st[0])
	}
	if st, _ := call(t, ctx, c, "input_load_u8", 9); st[0] != '9' {
		t.Errorf("input_load_u8(9) = %d", st[0])
	}
	if st, _ := call(t, ctx, c, "input_load_u64", 2); st[0] != 0x3938373635343332 {
		t.Errorf("input_load_u64(2) = %#x", st[0])
	}
	for _, tc := range []struct {
		fn  string
		arg uint64
	}{{"input_load_u8", 10}, {"input_load_u64", 3}, {"input_load_u64", 1 << 63}} {
		if _, trap := call(t, ctx, c, tc.fn, tc.arg); trap == nil {
			t.Errorf("%s(%d) past the input did not trap", tc.fn, tc.arg)
		}
	}
	st, _ := call(t, ctx, c, "input_offset")
	if b, _ := c.blocks.bytes(st[0]); string(b) != "0123456789" {
		t.Errorf("input_offset's block holds %q", b)
	}
}

func TestCall_vars(t *testing.T) {
	ctx := context.Background()
	c := NewCall(CallConfig{MaxVarBytes: 16})
	if _, trap := call(t, ctx, c, "var_set", put(t, c, "k"), put(t, c, "12345678")); trap != nil {
		t.Fatalf("var_set within the cap: %v", trap)
	}
	st, _ := call(t, ctx, c, "var_get", put(t, c, "k"))
	if b, _ := c.blocks.bytes(st[0]); string(b) != "12345678" {
		t.Fatalf("var_get = %q", b)
	}
	// Replacing a var counts its new size, not both.
	if _, trap := call(t, ctx, c, "var_set", put(t, c, "k"), put(t, c, "123456789012345")); trap != nil {
		t.Fatalf("replacing within the cap: %v", trap)
	}
	_, trap := call(t, ctx, c, "var_set", put(t, c, "other"), put(t, c, "x"))
	if trap == nil || c.Failure() == nil || c.Failure().Code != abi.CodeQuotaExceeded {
		t.Fatalf("a var past the cap: trap %v, failure %v; want quota_exceeded", trap, c.Failure())
	}
	// Deleting frees the bytes.
	c = NewCall(CallConfig{MaxVarBytes: 16})
	call(t, ctx, c, "var_set", put(t, c, "k"), put(t, c, "123456789012345"))
	call(t, ctx, c, "var_set", put(t, c, "k"), 0)
	if _, trap := call(t, ctx, c, "var_set", put(t, c, "j"), put(t, c, "123456789012345")); trap != nil {
		t.Fatalf("after deleting k: %v", trap)
	}
}

func TestCall_blocksCap(t *testing.T) {
	c := NewCall(CallConfig{MaxBlockBytes: 1024})
	ctx := context.Background()
	if _, trap := call(t, ctx, c, "alloc", 1024); trap != nil {
		t.Fatalf("alloc within the cap: %v", trap)
	}
	_, trap := call(t, ctx, c, "alloc", 8)
	if trap == nil || c.Failure() == nil || c.Failure().Code != abi.CodeQuotaExceeded {
		t.Fatalf("alloc past the cap: trap %v, failure %v", trap, c.Failure())
	}
}

func TestCall_outOfBlocks(t *testing.T) {
	c := NewCall(CallConfig{Log: func(Level, string) {}})
	ctx := context.Background()
	off := put(t, c, "abcdefgh")
	for _, tc := range []struct {
		fn   string
		args []uint64
	}{
		{"load_u8", []uint64{1 << 20}},
		{"load_u64", []uint64{off + 1}},
		{"store_u8", []uint64{0, 1}},
		{"store_u64", []uint64{off + 4, 1}},
		{"output_set", []uint64{off, 1 << 20}},
		{"config_get", []uint64{12345}},
		{"log_error", []uint64{12345}},
	} {
		if _, trap := call(t, ctx, c, tc.fn, tc.args...); trap == nil {
			t.Errorf("%s%v outside the blocks did not trap", tc.fn, tc.args)
		}
	}
	if st, trap := call(t, ctx, c, "load_u64", off); trap != nil || st[0] != 0x6867666564636261 {
		t.Errorf("load_u64 of a block = %#x, %v", st[0], trap)
	}
}

func TestCall_outputAndError(t *testing.T) {
	c := NewCall(CallConfig{})
	ctx := context.Background()
	out := put(t, c, "result")
	call(t, ctx, c, "output_set", out, 6)
	// Extism reads the output when the function returns: later changes to
	// the block are in it.
	call(t, ctx, c, "store_u8", out, 'R')
	if got := string(c.Output()); got != "Result" {
		t.Errorf("Output() = %q", got)
	}
	if c.Error() != "" {
		t.Errorf("Error() = %q before error_set", c.Error())
	}
	call(t, ctx, c, "error_set", put(t, c, "bad"))
	if c.Error() != "bad" {
		t.Errorf("Error() = %q", c.Error())
	}
}

func TestCall_noHTTPGrants(t *testing.T) {
	c := NewCall(CallConfig{})
	_, trap := call(t, context.Background(), c, "http_request", put(t, c, `{"url":"https://example.com/?token=secret"}`), 0)
	if trap == nil || c.Failure() == nil || c.Failure().Code != abi.CodePermissionDenied {
		t.Fatalf("trap %v, failure %v; want permission_denied", trap, c.Failure())
	}
	if msg := c.Failure().Message; msg == "" || strings.Contains(msg, "secret") {
		t.Errorf("the denial's message %q is empty or shows the query", msg)
	}
}

func TestCall_stepOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := NewCall(CallConfig{})
	if _, trap := call(t, ctx, c, "input_length"); trap == nil {
		t.Fatal("a host call after the step's end did not stop the guest")
	}
	if _, trap := call(t, context.Background(), nil, "input_length"); trap == nil {
		t.Fatal("a host call without a Call did not trap")
	}
}

func TestEntries(t *testing.T) {
	fn := func(name string, params int, results int) engine.Export {
		s := abi.Signature{Params: make([]abi.ValueType, params), Results: make([]abi.ValueType, results)}
		return engine.Export{Name: name, Kind: engine.KindFunc, Signature: s}
	}
	tests := []struct {
		name    string
		exports []engine.Export
		fn      string
		want    []string
	}{
		{"plain", []engine.Export{fn("run", 0, 1)}, "run", []string{"run"}},
		{"reactor", []engine.Export{fn("run", 0, 1), fn("_initialize", 0, 0), fn("_start", 0, 0)}, "run", []string{"_initialize", "run"}},
		{"command ctors", []engine.Export{fn("run", 0, 0), fn("__wasm_call_ctors", 0, 0)}, "run", []string{"__wasm_call_ctors", "run"}},
		{"haskell", []engine.Export{fn("testing", 0, 1), fn("_initialize", 0, 0), fn("hs_init", 2, 0)}, "testing", []string{"_initialize", "hs_init", "testing"}},
		{"start itself", []engine.Export{fn("_start", 0, 0), fn("_initialize", 0, 0)}, "_start", []string{"_start"}},
		{"tinygo command", []engine.Export{fn("run_test", 0, 1), fn("_start", 0, 0)}, "run_test", []string{"run_test"}},
	}
	for _, tt := range tests {
		got, err := Entries(tt.exports, tt.fn)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Entries = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	bad := []engine.Export{fn("params", 1, 1), fn("two", 0, 2), {Name: "memory", Kind: engine.KindMemory}}
	for _, name := range []string{"", "missing", "params", "two", "memory"} {
		if _, err := Entries(bad, name); !errors.Is(err, ErrFunction) {
			t.Errorf("Entries(%q) = %v, want ErrFunction", name, err)
		}
	}
}

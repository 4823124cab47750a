package host

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// encodeKV is the encoder of docs/abi.md §4: each string followed by a NUL.
func encodeKV(kv []string) []byte {
	var b []byte
	for _, s := range kv {
		b = append(b, s...)
		b = append(b, 0)
	}
	return b
}

func FuzzDecodeKV(f *testing.F) {
	for _, seed := range []string{
		"",
		"k\x00v\x00",
		"user\x00ana\x00n\x003\x00",
		"\x00\x00",
		"k\x00",
		"k\x00v",
		"\x00",
		"k\x00v\x00x\x00",
		"\xff\x00\xfe\x00",
		strings.Repeat("k", maxMessage+3) + "\x00v\x00",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kv, ok := decodeKV(b)

		// The rule of docs/abi.md: empty, or NUL-terminated strings of an
		// even count, each ending in a NUL.
		nuls := bytes.Count(b, []byte{0})
		wantOK := len(b) == 0 || (b[len(b)-1] == 0 && nuls%2 == 0)
		if ok != wantOK {
			t.Fatalf("decodeKV(%q) ok=%v, want %v", b, ok, wantOK)
		}
		if !ok {
			if kv != nil {
				t.Fatalf("decodeKV(%q) refused the input but returned %q", b, kv)
			}
			return
		}
		if len(kv) != nuls {
			t.Fatalf("decodeKV(%q) gave %d strings, want %d", b, len(kv), nuls)
		}
		exact := utf8.Valid(b)
		for _, s := range kv {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("decodeKV(%q) gave %q: not valid UTF-8 without NUL", b, s)
			}
		}
		for part := range bytes.SplitSeq(b, []byte{0}) {
			exact = exact && len(part) <= maxMessage
		}
		// Valid UTF-8 strings within the message cap round-trip exactly.
		if exact {
			if enc := encodeKV(kv); !bytes.Equal(enc, b) {
				t.Fatalf("decodeKV(%q) = %q, which encodes as %q", b, kv, enc)
			}
		}
		// Whatever was decoded encodes to something that decodes again.
		if again, ok := decodeKV(encodeKV(kv)); !ok || len(again) != len(kv) {
			t.Fatalf("decoded %q re-encodes to %q, which decodes to %q, %v", kv, encodeKV(kv), again, ok)
		}
	})
}

// FuzzHostCalls calls a host function with arbitrary stack values against
// memory of arbitrary size and contents, on a live or ended step. A call
// never panics, returns a result the ABI defines for that function and,
// unless it returns ok, changes nothing.
func FuzzHostCalls(f *testing.F) {
	names := make([]string, 0, len(validCalls))
	for _, c := range validCalls {
		names = append(names, c.fn)
	}
	for i, c := range validCalls {
		var a [5]uint64
		copy(a[:], c.args)
		for state := range uint8(3) {
			f.Add(uint8(i), state, uint32(64<<10), a[0], a[1], a[2], a[3], a[4], []byte("input"), []byte("k\x00v\x00"))
		}
	}
	f.Add(uint8(4), uint8(0), uint32(16), uint64(1), uint64(0), uint64(4), uint64(4), uint64(4), []byte{}, []byte("ab\x00"))
	f.Add(uint8(1), uint8(0), uint32(0), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0), []byte{}, []byte{})
	f.Add(uint8(2), uint8(0), uint32(100), uint64(1<<32|3), uint64(1<<33|90), uint64(0), uint64(0), uint64(0), []byte{}, []byte("x"))

	f.Fuzz(func(t *testing.T, fn, state uint8, memSize uint32, a0, a1, a2, a3, a4 uint64, input, fill []byte) {
		name := names[int(fn)%len(names)]
		ts := newTestStep(t, string(input), Limits{Output: 64, Log: 256})
		ts.mem = &fakeMemory{buf: make([]byte, memSize%(128<<10+1))}
		if len(fill) > 0 {
			for i := range ts.mem.buf {
				ts.mem.buf[i] = fill[i%len(fill)]
			}
		}
		var mem engine.Memory = ts.mem
		if state&4 != 0 {
			mem = nil // a guest without memory
		}
		ended := abi.ResultOK
		switch state % 3 {
		case 1:
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(ErrStepTimeout)
			ts.withContext(ctx)
			ended = abi.ResultTimeout
		case 2:
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(ErrCancelled)
			ts.withContext(ctx)
			ended = abi.ResultCancelled
		}

		sig, _ := abi.LookupFunction(name)
		stack := []uint64{a0, a1, a2, a3, a4}[:max(len(sig.Params), len(sig.Results))]
		memBefore, before := bytes.Clone(ts.mem.buf), ts.state()
		hostFuncs()[name].Func(ts.ctx, mem, stack)
		r := abi.Result(stack[0])

		if ts.st.hostCalls != 1 {
			t.Errorf("host calls %d, want 1", ts.st.hostCalls)
		}
		if ended != abi.ResultOK {
			if r != ended {
				t.Fatalf("%s on an ended step = %s, want %s", name, r, ended)
			}
			ts.checkNoEffect(t, memBefore, before)
			return
		}
		allowed := map[abi.Result]bool{abi.ResultOK: true, abi.ResultInvalid: true}
		if name == abi.FuncOutputWrite || name == abi.FuncLog {
			allowed[abi.ResultLimit] = true
		}
		if name == abi.FuncCheck {
			allowed = map[abi.Result]bool{abi.ResultOK: true}
		}
		if !allowed[r] {
			t.Fatalf("%s(%v) = %s, not a result this function may return", name, stack, r)
		}
		switch {
		case r == abi.ResultInvalid:
			ts.checkNoEffect(t, memBefore, before)
		case r == abi.ResultLimit:
			if !bytes.Equal(ts.mem.buf, memBefore) || ts.state().output != before.output || ts.logs.Len() != before.logBytes {
				t.Errorf("%s returned limit but had an effect", name)
			}
		case name == abi.FuncInputLen:
			if got := ts.mem.u32(uint32(a0)); got != uint32(len(input)) {
				t.Errorf("input_len wrote %d, want %d", got, len(input))
			}
		case name == abi.FuncInputRead:
			n := ts.mem.u32(uint32(a2))
			if uint64(n) != min(uint64(uint32(a1)), uint64(len(input))) {
				t.Errorf("input_read count %d for a buffer of %d and input of %d", n, uint32(a1), len(input))
			}
		case name == abi.FuncOutputWrite:
			want, _ := ts.mem.Read(uint32(a0), uint32(a1))
			if got := ts.st.output.buf; !bytes.Equal(got, want) {
				t.Errorf("output %q, want %q", got, want)
			}
		case name == abi.FuncErrorSet:
			if e := ts.st.guestErr; e == nil || e.Code != abi.Code(uint32(a0)) || e.Class != abi.Class(uint32(a1)) {
				t.Errorf("error_set ok but recorded %+v", e)
			}
		case name == abi.FuncLog:
			if recs := ts.records(t); len(recs) != 1 {
				t.Errorf("log ok but %d records", len(recs))
			}
		}
	})
}

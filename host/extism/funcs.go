package extism

import (
	"context"
	"strconv"

	"github.com/blockhost/blockhost/host/engine"
)

// HostModule returns extism:host/env as an engine host module. Give it to
// the engine once (engine.Config.HostModules); each run finds its Call in
// the context, put there with WithCall.
func HostModule() engine.HostModule {
	fns := []struct {
		name string
		f    func(*Call, context.Context, []uint64)
	}{
		{"alloc", (*Call).hAlloc},
		{"free", (*Call).hFree},
		{"length", (*Call).hLength},
		{"length_unsafe", (*Call).hLength},
		{"load_u8", (*Call).hLoadU8},
		{"load_u64", (*Call).hLoadU64},
		{"store_u8", (*Call).hStoreU8},
		{"store_u64", (*Call).hStoreU64},
		{"reset", (*Call).hReset},
		{"memory_bytes", (*Call).hMemoryBytes},
		{"input_length", (*Call).hInputLength},
		{"input_offset", (*Call).hInputOffset},
		{"input_load_u8", (*Call).hInputLoadU8},
		{"input_load_u64", (*Call).hInputLoadU64},
		{"input_set", (*Call).hInputSet},
		{"output_set", (*Call).hOutputSet},
		{"output_length", (*Call).hOutputLength},
		{"output_offset", (*Call).hOutputOffset},
		{"error_set", (*Call).hErrorSet},
		{"error_get", (*Call).hErrorGet},
		{"config_get", (*Call).hConfigGet},
		{"var_get", (*Call).hVarGet},
		{"var_set", (*Call).hVarSet},
		{"http_request", (*Call).hHTTPRequest},
		{"http_status_code", (*Call).hHTTPStatusCode},
		{"http_headers", (*Call).hHTTPHeaders},
		{"get_log_level", (*Call).hGetLogLevel},
		{"log_trace", logAt(LevelTrace)},
		{"log_debug", logAt(LevelDebug)},
		{"log_info", logAt(LevelInfo)},
		{"log_warn", logAt(LevelWarn)},
		{"log_error", logAt(LevelError)},
	}
	hm := engine.HostModule{Name: ImportModule, Functions: make([]engine.HostFunction, 0, len(fns))}
	for _, fn := range fns {
		sig, ok := Functions[fn.name]
		if !ok {
			panic("extism: host function " + fn.name + " is not in Functions")
		}
		f := fn.f
		hm.Functions = append(hm.Functions, engine.HostFunction{
			Name:      fn.name,
			Signature: sig,
			Func: func(ctx context.Context, _ engine.Memory, stack []uint64) {
				f(enter(ctx), ctx, stack)
			},
		})
	}
	if len(hm.Functions) != len(Functions) {
		panic("extism: Functions and HostModule disagree")
	}
	return hm
}

// alloc stores b in a new block, stopping the guest when the blocks would
// pass their cap.
func (c *Call) alloc(n uint64) uint64 {
	off, ok := c.blocks.alloc(n)
	if !ok {
		c.fail(c.blocks.overError(n))
	}
	return off
}

func (c *Call) put(b []byte) uint64 {
	off, ok := c.blocks.put(b)
	if !ok {
		c.fail(c.blocks.overError(uint64(len(b))))
	}
	return off
}

// read returns a copy of the live block at offset, trapping when there is
// none; what names the argument in the trap's message.
func (c *Call) read(offset uint64, what string) []byte {
	b, ok := c.blocks.bytes(offset)
	if !ok {
		trap("%s: no memory block at offset %d", what, offset)
	}
	return append([]byte(nil), b...)
}

func (c *Call) hAlloc(_ context.Context, stack []uint64) { stack[0] = c.alloc(stack[0]) }

func (c *Call) hFree(_ context.Context, stack []uint64) { c.blocks.release(stack[0]) }

func (c *Call) hLength(_ context.Context, stack []uint64) {
	stack[0] = c.blocks.length(stack[0])
}

func (c *Call) hLoadU8(_ context.Context, stack []uint64) {
	v, ok := c.blocks.loadU8(stack[0])
	if !ok {
		trap("load_u8: offset %d is outside the memory blocks", stack[0])
	}
	stack[0] = uint64(v)
}

func (c *Call) hLoadU64(_ context.Context, stack []uint64) {
	v, ok := c.blocks.loadU64(stack[0])
	if !ok {
		trap("load_u64: offset %d is outside the memory blocks", stack[0])
	}
	stack[0] = v
}

func (c *Call) hStoreU8(_ context.Context, stack []uint64) {
	if !c.blocks.storeU8(stack[0], byte(stack[1])) {
		trap("store_u8: offset %d is outside the memory blocks", stack[0])
	}
}

func (c *Call) hStoreU64(_ context.Context, stack []uint64) {
	if !c.blocks.storeU64(stack[0], stack[1]) {
		trap("store_u64: offset %d is outside the memory blocks", stack[0])
	}
}

func (c *Call) hReset(context.Context, []uint64) {
	c.blocks.reset()
	c.inputOffset, c.outOffset, c.outLength, c.errOffset = 0, 0, 0, 0
}

func (c *Call) hMemoryBytes(_ context.Context, stack []uint64) {
	stack[0] = uint64(len(c.blocks.arena))
}

func (c *Call) hInputLength(_ context.Context, stack []uint64) {
	stack[0] = uint64(len(c.cfg.Input))
}

// hInputOffset places the input in a block the first time a plugin asks
// where it is; plugins that read it with input_load_* never pay the copy.
func (c *Call) hInputOffset(_ context.Context, stack []uint64) {
	if c.inputOffset == 0 && len(c.cfg.Input) > 0 {
		c.inputOffset = c.put(c.cfg.Input)
	}
	stack[0] = c.inputOffset
}

func (c *Call) hInputLoadU8(_ context.Context, stack []uint64) {
	i := stack[0]
	if i >= uint64(len(c.cfg.Input)) {
		trap("input_load_u8: index %d is past the input's %d bytes", i, len(c.cfg.Input))
	}
	stack[0] = uint64(c.cfg.Input[i])
}

func (c *Call) hInputLoadU64(_ context.Context, stack []uint64) {
	i := stack[0]
	if i > uint64(len(c.cfg.Input)) || uint64(len(c.cfg.Input))-i < 8 {
		trap("input_load_u64: index %d is past the input's %d bytes", i, len(c.cfg.Input))
	}
	in := c.cfg.Input[i : i+8]
	stack[0] = uint64(in[0]) | uint64(in[1])<<8 | uint64(in[2])<<16 | uint64(in[3])<<24 |
		uint64(in[4])<<32 | uint64(in[5])<<40 | uint64(in[6])<<48 | uint64(in[7])<<56
}

func (c *Call) hInputSet(_ context.Context, stack []uint64) {
	b, ok := c.blocks.span(stack[0], stack[1])
	if !ok {
		trap("input_set: %d bytes at offset %d are outside the memory blocks", stack[1], stack[0])
	}
	c.cfg.Input = append([]byte(nil), b...)
	c.inputOffset = stack[0]
}

func (c *Call) hOutputSet(_ context.Context, stack []uint64) {
	if _, ok := c.blocks.span(stack[0], stack[1]); !ok {
		trap("output_set: %d bytes at offset %d are outside the memory blocks", stack[1], stack[0])
	}
	c.outOffset, c.outLength = stack[0], stack[1]
}

func (c *Call) hOutputLength(_ context.Context, stack []uint64) { stack[0] = c.outLength }

func (c *Call) hOutputOffset(_ context.Context, stack []uint64) { stack[0] = c.outOffset }

func (c *Call) hErrorSet(_ context.Context, stack []uint64) { c.errOffset = stack[0] }

func (c *Call) hErrorGet(_ context.Context, stack []uint64) { stack[0] = c.errOffset }

// hConfigGet answers a config key's value in a new block, or 0 when the
// key is not set. Like Extism it leaves the key's block to the plugin.
func (c *Call) hConfigGet(_ context.Context, stack []uint64) {
	key := c.read(stack[0], "config_get key")
	v, ok := c.cfg.Config[string(key)]
	if !ok {
		stack[0] = 0
		return
	}
	stack[0] = c.put([]byte(v))
}

func (c *Call) hVarGet(_ context.Context, stack []uint64) {
	key := c.read(stack[0], "var_get key")
	c.blocks.release(stack[0])
	v, ok := c.vars[string(key)]
	if !ok {
		stack[0] = 0
		return
	}
	stack[0] = c.put(v)
}

// hVarSet sets a var, or deletes it when the value offset is 0. Vars last
// for the step.
func (c *Call) hVarSet(_ context.Context, stack []uint64) {
	key := string(c.read(stack[0], "var_set key"))
	c.blocks.release(stack[0])
	old, had := c.vars[key]
	if stack[1] == 0 {
		if had {
			c.varBytes -= uint64(len(key) + len(old))
			delete(c.vars, key)
		}
		return
	}
	v := c.read(stack[1], "var_set value")
	c.blocks.release(stack[1])
	size := c.varBytes + uint64(len(key)+len(v))
	if had {
		size -= uint64(len(key) + len(old))
	}
	if size > c.cfg.MaxVarBytes {
		c.fail(quotaError("vars would take " + itoa(size) + " bytes, over the cap of " + itoa(c.cfg.MaxVarBytes)))
	}
	if c.vars == nil {
		c.vars = map[string][]byte{}
	}
	c.vars[key], c.varBytes = v, size
}

func (c *Call) hGetLogLevel(_ context.Context, stack []uint64) {
	stack[0] = uint64(uint32(c.cfg.LogLevel))
}

// logAt is log_<level>(offset): the message block is freed either way, as
// Extism frees it.
func logAt(level Level) func(*Call, context.Context, []uint64) {
	return func(c *Call, _ context.Context, stack []uint64) {
		if level < c.cfg.LogLevel || c.cfg.Log == nil {
			c.blocks.release(stack[0])
			return
		}
		msg := c.read(stack[0], "log message")
		c.blocks.release(stack[0])
		c.cfg.Log(level, string(msg))
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

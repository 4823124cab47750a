package extism

import (
	"slices"
	"strconv"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
)

// ImportModule is the module name of Extism's host ABI. A WebAssembly
// module importing from it is an Extism plugin.
const ImportModule = "extism:host/env"

// UserModule is where Extism embedders put their own host functions. A
// plugin importing from it needs its embedder's code, which blockhost
// does not have.
const UserModule = "extism:host/user"

var (
	i32 = abi.I32
	i64 = abi.I64
)

func sig(params []abi.ValueType, results ...abi.ValueType) abi.Signature {
	return abi.Signature{Params: params, Results: results}
}

func ts(t ...abi.ValueType) []abi.ValueType { return t }

// Functions are the functions of extism:host/env, by name, with their
// signatures as Extism's runtime (go-sdk v1.7.1) defines them. Offsets and
// lengths are i64.
var Functions = map[string]abi.Signature{
	// Memory blocks.
	"alloc":         sig(ts(i64), i64),
	"free":          sig(ts(i64)),
	"length":        sig(ts(i64), i64),
	"length_unsafe": sig(ts(i64), i64),
	"load_u8":       sig(ts(i64), i32),
	"load_u64":      sig(ts(i64), i64),
	"store_u8":      sig(ts(i64, i32)),
	"store_u64":     sig(ts(i64, i64)),
	"reset":         sig(nil),
	"memory_bytes":  sig(nil, i64),
	// Input, output and error.
	"input_length":   sig(nil, i64),
	"input_offset":   sig(nil, i64),
	"input_load_u8":  sig(ts(i64), i32),
	"input_load_u64": sig(ts(i64), i64),
	"input_set":      sig(ts(i64, i64)),
	"output_set":     sig(ts(i64, i64)),
	"output_length":  sig(nil, i64),
	"output_offset":  sig(nil, i64),
	"error_set":      sig(ts(i64)),
	"error_get":      sig(nil, i64),
	// Config and vars.
	"config_get": sig(ts(i64), i64),
	"var_get":    sig(ts(i64), i64),
	"var_set":    sig(ts(i64, i64)),
	// HTTP.
	"http_request":     sig(ts(i64, i64), i64),
	"http_status_code": sig(nil, i32),
	"http_headers":     sig(nil, i64),
	// Logging.
	"get_log_level": sig(nil, i32),
	"log_trace":     sig(ts(i64)),
	"log_debug":     sig(ts(i64)),
	"log_info":      sig(ts(i64)),
	"log_warn":      sig(ts(i64)),
	"log_error":     sig(ts(i64)),
}

// Guest runtime initialisers, called before the plugin's function as
// Extism calls them: a WASI reactor's _initialize, a WASI command's
// constructors (when it exports them and no _initialize), and the Haskell
// runtime's hs_init after _initialize.
const (
	exportInitialize = "_initialize"
	exportStart      = "_start"
	exportCtors      = "__wasm_call_ctors"
	exportHSInit     = "hs_init"
)

// Entries returns the exports to call, in order, to run the plugin
// function fn of a module with the given exports: the guest runtime's
// initialisers, then fn itself. The error is a *FunctionError when fn
// cannot be called: it is not an exported function, takes parameters, or
// returns more than one value.
func Entries(exports []engine.Export, fn string) ([]string, error) {
	funcs := make(map[string]abi.Signature, len(exports))
	for _, ex := range exports {
		if ex.Kind == engine.KindFunc {
			funcs[ex.Name] = ex.Signature
		}
	}
	s, ok := funcs[fn]
	switch {
	case fn == "":
		return nil, &FunctionError{Function: fn, Reason: "is empty: name the plugin function to call"}
	case !ok:
		return nil, &FunctionError{Function: fn, Reason: "is not exported by the plugin" + exported(funcs)}
	case len(s.Params) > 0:
		return nil, &FunctionError{Function: fn, Reason: "takes parameters; a plugin function takes none"}
	case len(s.Results) > 1:
		return nil, &FunctionError{Function: fn, Reason: "returns more than one value; a plugin function returns at most an i32"}
	}
	if fn == exportStart || fn == exportInitialize {
		return []string{fn}, nil
	}
	noParams := func(name string) bool {
		s, ok := funcs[name]
		return ok && len(s.Params) == 0
	}
	var entries []string
	_, haskell := funcs[exportHSInit]
	switch {
	case noParams(exportInitialize):
		entries = append(entries, exportInitialize)
	case noParams(exportCtors) && !haskell:
		entries = append(entries, exportCtors)
	}
	if haskell {
		// hs_init(argc, argv) is called with zeros, as Extism does.
		entries = append(entries, exportHSInit)
	}
	return append(entries, fn), nil
}

// exported lists the functions a plugin exports, for an error message.
func exported(funcs map[string]abi.Signature) string {
	var names []string
	for n, s := range funcs {
		if len(s.Params) == 0 && len(s.Results) <= 1 && n != exportInitialize && n != exportCtors {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return " (it exports no function a host can call)"
	}
	slices.Sort(names)
	if len(names) > 10 {
		names = append(names[:10], "…")
	}
	out := " (it exports"
	for i, n := range names {
		if i > 0 {
			out += ","
		}
		out += " " + n
	}
	return out + ")"
}

func quote(s string) string { return strconv.Quote(s) }

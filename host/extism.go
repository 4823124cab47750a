package host

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/go-hclog"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/extism"
	"github.com/blockhost/blockhost/host/httpcap"
)

// Extism plugins (docs/extism.md): a module importing extism:host/env is
// run as Extism runs it. Each step names the function to call
// (Step.Function) and gets Step.Config as the plugin's config; the step's
// input is the plugin's input and the plugin's output the step's output.

// inspectExtism checks an Extism plugin at load. Its entry points depend
// on the function each step calls, so none are returned.
func inspectExtism(name string, mod engine.Module, importsABI bool) (moduleKind, []string, error) {
	if importsABI {
		return 0, nil, &ModuleError{Module: name, Kind: ErrInvalidModule,
			Detail: fmt.Sprintf("imports both %q and %q: a module is a blockhost block or an Extism plugin, not both",
				abi.ImportModule, extism.ImportModule)}
	}
	for _, ex := range mod.Exports() {
		if ex.Name == abi.ExportMemory && ex.Kind == engine.KindMemory {
			return kindExtism, nil, nil
		}
	}
	return 0, nil, &ModuleError{Module: name, Kind: ErrInvalidModule,
		Detail: fmt.Sprintf("an Extism plugin must export its memory as %q", abi.ExportMemory)}
}

// checkExtismImport checks an import of extism:host/env against Extism's
// host ABI. Imports of extism:host/user are host functions an Extism
// embedder wrote for its own plugins; blockhost has none of them.
func checkExtismImport(name string, im engine.Import) error {
	if im.Module == extism.UserModule {
		return &ModuleError{Module: name, Kind: ErrUnknownImport,
			Detail: fmt.Sprintf("unknown import %q.%q: it is a host function of the plugin's own Extism embedder, which blockhost does not provide",
				im.Module, im.Name)}
	}
	sig, ok := extism.Functions[im.Name]
	if im.Kind != engine.KindFunc || !ok {
		return &ModuleError{Module: name, Kind: ErrUnknownImport,
			Detail: fmt.Sprintf("unknown import %q.%q (%s not a function of Extism's host ABI)", im.Module, im.Name, im.Kind)}
	}
	if !slices.Equal(sig.Params, im.Signature.Params) || !slices.Equal(sig.Results, im.Signature.Results) {
		return &ModuleError{Module: name, Kind: ErrUnknownImport,
			Detail: fmt.Sprintf("import %q.%q has type %s, Extism's host ABI defines %s",
				im.Module, im.Name, sigString(im.Signature), sigString(sig))}
	}
	return nil
}

// IsExtism reports whether the block is an Extism plugin, whose steps
// name the function to call.
func (b *Block) IsExtism() bool { return b.kind == kindExtism }

// Kind names how the block runs: "abi" (a blockhost block), "command" (a
// plain WASI command) or "extism" (an Extism plugin).
func (b *Block) Kind() string {
	switch b.kind {
	case kindCommand:
		return "command"
	case kindExtism:
		return "extism"
	}
	return "abi"
}

// CheckFunction reports whether a step can call the plugin function fn:
// nil when it can; for a block that is not an Extism plugin, fn must be
// empty. The error is a *ModuleError matching ErrInvalidModule.
func (b *Block) CheckFunction(fn string) error {
	if b.kind == kindExtism && fn == "" {
		return &ModuleError{Module: b.name, Kind: ErrInvalidModule,
			Detail: "is an Extism plugin: name the function to call (--func on the command line, function in a manifest)"}
	}
	_, err := b.extismEntries(fn)
	if err != nil {
		return &ModuleError{Module: b.name, Kind: ErrInvalidModule, Detail: err.Error()}
	}
	return nil
}

// callsPlugin reports whether a step calling fn runs as an Extism plugin
// call: every step of an Extism plugin, and a WASI command's step that
// names a function (a plugin that happens to need nothing of Extism's
// host ABI, such as Extism's own noop.wasm).
func (b *Block) callsPlugin(fn string) bool {
	return b.kind == kindExtism || (b.kind == kindCommand && fn != "")
}

// extismEntries returns the entry points of a step calling fn, computed
// once per function.
func (b *Block) extismEntries(fn string) ([]string, error) {
	if !b.callsPlugin(fn) {
		if fn != "" {
			return nil, fmt.Errorf("is a blockhost block: a function to call (%q) applies to Extism plugins and WASI commands only", fn)
		}
		return b.entry, nil
	}
	if e, ok := b.funcs.Load(fn); ok {
		return e.([]string), nil
	}
	entries, err := extism.Entries(b.mod.Exports(), fn)
	if err != nil {
		return nil, err
	}
	b.funcs.Store(fn, entries)
	return entries, nil
}

// extismLevels maps the step's log level to Extism's.
var extismLevels = map[hclog.Level]extism.Level{
	hclog.Trace: extism.LevelTrace, hclog.Debug: extism.LevelDebug, hclog.Info: extism.LevelInfo,
	hclog.Warn: extism.LevelWarn, hclog.Error: extism.LevelError, hclog.Off: extism.LevelOff,
}

var hclogFromExtism = [...]hclog.Level{
	extism.LevelTrace: hclog.Trace, extism.LevelDebug: hclog.Debug, extism.LevelInfo: hclog.Info,
	extism.LevelWarn: hclog.Warn, extism.LevelError: hclog.Error,
}

// startExtism prepares a step of an Extism plugin once its capabilities
// are open: the entry points and the call's state, carried in the
// returned context. A nil *abi.Error means the step can run.
func (b *Block) startExtism(ctx context.Context, st *stepState, step Step, cfg *engine.RunConfig) (context.Context, *extism.Call, *abi.Error) {
	entries, err := b.extismEntries(step.Function)
	if err != nil {
		return ctx, nil, abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, fmt.Sprintf("module %s: %v", b.name, err))
	}
	cfg.Entry = entries
	// The input and output are the plugin's, through the host ABI; what it
	// writes on its standard output is logged, as a block's is.
	cfg.Stdin, cfg.Stdout = nil, &logWriter{st: st, stream: "stdout"}
	level, ok := extismLevels[st.log().GetLevel()]
	if !ok {
		level = extism.LevelInfo
	}
	cc := extism.CallConfig{
		Input:         step.Input,
		Config:        step.Config,
		LogLevel:      level,
		MaxBlockBytes: st.limits.Memory,
		Log: func(l extism.Level, msg string) {
			if st.admit(min(len(msg), maxMessage)) {
				st.log().Log(hclogFromExtism[l], guestString([]byte(msg)))
			}
		},
	}
	if i := capabilityIndex(httpcap.Name); i >= 0 {
		cc.HTTP = httpcap.SessionOf(st.caps[i])
	}
	call := extism.NewCall(cc)
	return extism.WithCall(ctx, call), call, nil
}

// finishExtism turns a plugin call's outcome into the step's output and
// error, as Extism reports it: the host's own reason for stopping the
// plugin first, then error_set's message or a non-zero return.
func (b *Block) finishExtism(st *stepState, call *extism.Call, fn string, rr engine.RunResult, err error) {
	if _, werr := st.output.Write(call.Output()); werr != nil {
		return // quota_exceeded, decided by Run
	}
	if f := call.Failure(); f != nil {
		st.guestErr = f
		return
	}
	if err != nil || (rr.Exited && rr.ExitCode != 0) {
		return // a trap or an exit: decided by Run
	}
	var rc uint32
	if len(rr.Results) > 0 && !rr.Exited {
		rc = uint32(rr.Results[0])
	}
	msg := call.Error()
	switch {
	case msg != "":
		st.guestErr = abi.NewError(abi.CodeExecutionFailed, abi.ClassPermanent, guestString([]byte(msg)))
	case rc != 0:
		st.guestErr = abi.NewError(abi.CodeExecutionFailed, abi.ClassPermanent,
			fmt.Sprintf("plugin function %q returned %d", fn, int32(rc)))
	}
}

package host

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/extism"
)

// moduleKind is how the host runs a module: as an ABI block or as a plain
// WASI command (docs/abi.md §1).
type moduleKind uint8

const (
	kindABI moduleKind = iota
	kindCommand
	// kindExtism is an Extism plugin: it imports extism:host/env, and each
	// step calls the function it names (extism.go).
	kindExtism
)

// wasiFunctions are the functions of WASI preview1. The engines provide
// all of them; which of them can reach anything outside the sandbox is
// decided by what a step grants.
var wasiFunctions = map[string]bool{
	"args_get": true, "args_sizes_get": true, "environ_get": true, "environ_sizes_get": true,
	"clock_res_get": true, "clock_time_get": true, "fd_advise": true, "fd_allocate": true,
	"fd_close": true, "fd_datasync": true, "fd_fdstat_get": true, "fd_fdstat_set_flags": true,
	"fd_fdstat_set_rights": true, "fd_filestat_get": true, "fd_filestat_set_size": true,
	"fd_filestat_set_times": true, "fd_pread": true, "fd_prestat_get": true,
	"fd_prestat_dir_name": true, "fd_pwrite": true, "fd_read": true, "fd_readdir": true,
	"fd_renumber": true, "fd_seek": true, "fd_sync": true, "fd_tell": true, "fd_write": true,
	"path_create_directory": true, "path_filestat_get": true, "path_filestat_set_times": true,
	"path_link": true, "path_open": true, "path_readlink": true, "path_remove_directory": true,
	"path_rename": true, "path_symlink": true, "path_unlink_file": true, "poll_oneoff": true,
	"proc_exit": true, "proc_raise": true, "sched_yield": true, "random_get": true,
	"sock_accept": true, "sock_recv": true, "sock_send": true, "sock_shutdown": true,
}

// inspect checks a compiled module against the ABI and returns how to run
// it: its kind and its entry points.
func inspect(name string, mod engine.Module) (moduleKind, []string, error) {
	importsABI, importsExtism := false, false
	for _, im := range mod.Imports() {
		if err := checkImport(name, im); err != nil {
			return 0, nil, err
		}
		switch im.Module {
		case abi.ImportModule:
			importsABI = true
		case extism.ImportModule:
			importsExtism = true
		}
	}
	if importsExtism {
		return inspectExtism(name, mod, importsABI)
	}

	exports := map[string]engine.ExternKind{}
	var declared []uint32
	for _, ex := range mod.Exports() {
		exports[ex.Name] = ex.Kind
		if rest, ok := strings.CutPrefix(ex.Name, abi.VersionExportPrefix); ok && ex.Kind == engine.KindFunc {
			if v, err := strconv.ParseUint(rest, 10, 32); err == nil {
				declared = append(declared, uint32(v))
			}
		}
	}
	slices.Sort(declared)

	kind := kindCommand
	if importsABI || len(declared) > 0 {
		kind = kindABI
		if !slices.Contains(declared, hostVersion) {
			return 0, nil, &VersionError{Module: name, Declared: declared, Host: hostVersion}
		}
		if k, ok := exports[abi.ExportMemory]; !ok || k != engine.KindMemory {
			return 0, nil, &ModuleError{Module: name, Kind: ErrInvalidModule,
				Detail: fmt.Sprintf("an ABI block must export its memory as %q", abi.ExportMemory)}
		}
	}

	isFunc := func(n string) bool { k, ok := exports[n]; return ok && k == engine.KindFunc }
	switch {
	case isFunc(abi.ExportStart):
		return kind, []string{abi.ExportStart}, nil
	case kind == kindABI && isFunc(abi.ExportRun):
		if isFunc(abi.ExportInitialize) {
			return kind, []string{abi.ExportInitialize, abi.ExportRun}, nil
		}
		return kind, []string{abi.ExportRun}, nil
	case kind == kindABI:
		return 0, nil, &ModuleError{Module: name, Kind: ErrInvalidModule,
			Detail: fmt.Sprintf("no entry point: an ABI block exports %q or %q", abi.ExportStart, abi.ExportRun)}
	default:
		return 0, nil, &ModuleError{Module: name, Kind: ErrInvalidModule,
			Detail: fmt.Sprintf("no entry point: a WASI command exports %q (and a blockhost block also exports %q)",
				abi.ExportStart, abi.VersionExport(hostVersion))}
	}
}

func checkImport(name string, im engine.Import) error {
	unknown := func(why string) error {
		return &ModuleError{Module: name, Kind: ErrUnknownImport,
			Detail: fmt.Sprintf("unknown import %q.%q (%s %s)", im.Module, im.Name, im.Kind, why)}
	}
	switch im.Module {
	case abi.ImportModule:
		if im.Kind != engine.KindFunc {
			return unknown("the host exports only functions")
		}
		sig, ok := abi.LookupFunction(im.Name)
		if !ok {
			return unknown("not a function of ABI v1")
		}
		if !slices.Equal(sig.Params, im.Signature.Params) || !slices.Equal(sig.Results, im.Signature.Results) {
			return &ModuleError{Module: name, Kind: ErrUnknownImport,
				Detail: fmt.Sprintf("import %q.%q has type %s, ABI v1 defines %s",
					im.Module, im.Name, sigString(im.Signature), sigString(sig))}
		}
	case abi.WASIModule:
		if im.Kind != engine.KindFunc || !wasiFunctions[im.Name] {
			return unknown("not a function of WASI preview1")
		}
	case extism.ImportModule, extism.UserModule:
		return checkExtismImport(name, im)
	default:
		return unknown("the host provides only modules \"blockhost\", \"wasi_snapshot_preview1\" and, for Extism plugins, \"extism:host/env\"")
	}
	return nil
}

func sigString(s abi.Signature) string {
	str := func(ts []abi.ValueType) string {
		parts := make([]string, len(ts))
		for i, t := range ts {
			switch t {
			case abi.I32:
				parts[i] = "i32"
			case abi.I64:
				parts[i] = "i64"
			case 0x7d:
				parts[i] = "f32"
			case 0x7c:
				parts[i] = "f64"
			default:
				parts[i] = fmt.Sprintf("0x%x", byte(t))
			}
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return str(s.Params) + " -> " + str(s.Results)
}

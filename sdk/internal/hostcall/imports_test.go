package hostcall

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/abi"
)

// TestImports checks the //go:wasmimport declarations of the wasip1 build
// against abi.Functions(): every host function imported once, under module
// abi.ImportModule, with the right parameter and result types.
func TestImports(t *testing.T) {
	// Each capability declares its imports in a file of its own.
	files, err := filepath.Glob("*_wasip1.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *_wasip1.go files: %v", err)
	}
	fset := token.NewFileSet()
	var decls []ast.Decl
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		decls = append(decls, f.Decls...)
	}
	seen := map[string]bool{}
	for _, d := range decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Doc == nil {
			continue
		}
		for _, c := range fd.Doc.List {
			fields := strings.Fields(c.Text)
			if len(fields) == 0 || fields[0] != "//go:wasmimport" {
				continue
			}
			if len(fields) != 3 || fields[1] != abi.ImportModule {
				t.Errorf("%s: %q: want //go:wasmimport %s NAME", fd.Name.Name, c.Text, abi.ImportModule)
				continue
			}
			name := fields[2]
			want, ok := abi.LookupFunction(name)
			if !ok {
				t.Errorf("%s imports %q, which ABI v1 does not define", fd.Name.Name, name)
				continue
			}
			if seen[name] {
				t.Errorf("%q imported twice", name)
			}
			seen[name] = true
			got := abi.Signature{Params: wasmTypes(t, fd.Type.Params), Results: wasmTypes(t, fd.Type.Results)}
			if !slices.Equal(got.Params, want.Params) || !slices.Equal(got.Results, want.Results) {
				t.Errorf("%q: declared %v -> %v, ABI says %v -> %v", name, got.Params, got.Results, want.Params, want.Results)
			}
		}
	}
	for _, f := range abi.Functions() {
		name := f.Name
		if !seen[name] {
			t.Errorf("host function %q is not imported", name)
		}
	}
}

// wasmTypes lowers Go parameter types the way the compiler does for
// //go:wasmimport: pointers and 32-bit integers to i32, 64-bit ones to i64.
func wasmTypes(t *testing.T, fl *ast.FieldList) []abi.ValueType {
	t.Helper()
	if fl == nil {
		return nil
	}
	var out []abi.ValueType
	for _, f := range fl.List {
		var vt abi.ValueType
		switch ty := f.Type.(type) {
		case *ast.StarExpr:
			vt = abi.I32
		case *ast.Ident:
			switch ty.Name {
			case "uint32", "int32":
				vt = abi.I32
			case "uint64", "int64":
				vt = abi.I64
			default:
				t.Fatalf("unexpected parameter type %s", ty.Name)
			}
		default:
			t.Fatalf("unexpected parameter type %T", ty)
		}
		n := len(f.Names)
		if n == 0 {
			n = 1
		}
		for range n {
			out = append(out, vt)
		}
	}
	return out
}

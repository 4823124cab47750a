package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost"
)

// sdkDir is where a new Go project keeps its copy of the SDK's module.
const sdkDir = "blockhost-sdk"

// modulePath is the SDK's module, which a new project requires and
// replaces with a local copy: it is not published.
const modulePath = "github.com/blockhost/blockhost"

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "create a new block project: handler, native test, manifest, Makefile",
		ArgsUsage: "NAME [--lang go|c] [--sdk CHECKOUT]",
		Description: "Creates the directory NAME with a block that builds and passes its test as created.\n" +
			"A Go project gets a copy of this blockhost's SDK in " + sdkDir + "/ and a replace directive\n" +
			"in go.mod, so it builds with no network; --sdk points the replace at a blockhost checkout\n" +
			"instead. A C project gets sdk/c/blockhost.h.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "lang", Value: "go", Usage: "the block's language: go or c"},
			&cli.StringFlag{Name: "sdk", Usage: "a blockhost checkout for go.mod's replace directive, instead of a copy of the SDK"},
		},
		Action: func(c *cli.Context) error {
			lang, sdk := c.String("lang"), c.String("sdk")
			// Flags may also follow NAME.
			var rest []string
			args := c.Args().Slice()
			for i := 0; i < len(args); i++ {
				a := args[i]
				name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !strings.HasPrefix(a, "-") || (name != "lang" && name != "sdk") {
					rest = append(rest, a)
					continue
				}
				if !hasVal {
					if i+1 == len(args) {
						return usageErrorf("init: --%s needs a value", name)
					}
					val = args[i+1]
					i++
				}
				if name == "lang" {
					lang = val
				} else {
					sdk = val
				}
			}
			if len(rest) != 1 {
				return usageErrorf("init: want exactly one NAME (usage: blockhost init NAME [--lang go|c])")
			}
			if lang != "go" && lang != "c" {
				return usageErrorf("init: invalid --lang %q: want go or c", lang)
			}
			if sdk != "" && lang != "go" {
				return usageErrorf("init: --sdk is for Go projects")
			}
			p, err := newProject(rest[0], lang, sdk)
			if err != nil {
				return err
			}
			if err := p.create(); err != nil {
				return err
			}
			p.printNext(streamsOf(c).out)
			return nil
		},
	}
}

// project is a block project to create.
type project struct {
	Dir     string // where, as given
	Name    string // the block's name: Dir's last element
	Lang    string
	SDK     string // a checkout to replace the module with, or "" for a copy
	Version string // the blockhost that created it
	files   map[string][]byte
}

func newProject(dir, lang, sdk string) (*project, error) {
	name := filepath.Base(filepath.Clean(dir))
	if err := checkBlockName(name); err != nil {
		return nil, usageErrorf("init: %v", err)
	}
	p := &project{Dir: dir, Name: name, Lang: lang, Version: buildVersion(), files: map[string][]byte{}}
	if sdk != "" {
		abs, err := filepath.Abs(sdk)
		if err != nil {
			return nil, usageErrorf("init: --sdk: %v", err)
		}
		if mod, err := readModulePath(filepath.Join(abs, "go.mod")); err != nil || mod != modulePath {
			return nil, usageErrorf("init: --sdk %s is not a blockhost checkout (its go.mod must declare module %s)", sdk, modulePath)
		}
		p.SDK = filepath.ToSlash(abs)
	}
	var err error
	switch lang {
	case "go":
		err = p.goFiles()
	case "c":
		err = p.cFiles()
	}
	return p, err
}

// checkBlockName accepts a name that is a block name, a Go module path and
// a file name at once: a letter, then letters, digits, '-', '_' and '.'.
func checkBlockName(name string) error {
	ok := name != "" && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		ok = letter || i > 0 && ('0' <= c && c <= '9' || c == '-' || c == '_' || c == '.')
	}
	if !ok {
		return fmt.Errorf("invalid block name %q: use a letter, then letters, digits, '-', '_' or '.' (at most 64)", name)
	}
	return nil
}

// readModulePath returns the module path a go.mod declares.
func readModulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", errors.New("no module line")
}

func (p *project) render(name, text string) error {
	var b bytes.Buffer
	if err := template.Must(template.New(name).Parse(text)).Execute(&b, p); err != nil {
		return &exitErr{code: exitError, msg: "init: " + err.Error()}
	}
	p.files[name] = b.Bytes()
	return nil
}

func (p *project) goFiles() error {
	for _, f := range []struct{ name, text string }{
		{"go.mod", goModTemplate},
		{"main.go", goMainTemplate},
		{"main_test.go", goTestTemplate},
		{"block.hcl", manifestTemplate},
		{"Makefile", goMakefileTemplate},
		{".gitignore", "*.wasm\n"},
		{"README.md", goReadmeTemplate},
	} {
		if err := p.render(f.name, f.text); err != nil {
			return err
		}
	}
	if p.SDK != "" {
		return nil
	}
	// The copy of the SDK: the sources of abi/ and sdk/ without their
	// tests, as a module of its own.
	p.files[sdkDir+"/go.mod"] = []byte("module " + modulePath + "\n\ngo 1.26\n")
	p.files[sdkDir+"/README.md"] = []byte(fmt.Sprintf("This is the blockhost SDK (packages abi, sdk and sdk/sdktest) that `blockhost %s init`\n"+
		"copied here; go.mod's replace directive points at it. To use another blockhost's SDK, run\n"+
		"`blockhost init` again with it, or point the replace at a checkout:\n\n"+
		"    go mod edit -replace %s=/path/to/blockhost\n", p.Version, modulePath))
	return fs.WalkDir(blockhost.BlockSource, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(name, "_test.go") || strings.Contains(name, "/testdata/") || path.Ext(name) != ".go" {
			return nil
		}
		b, err := blockhost.BlockSource.ReadFile(name)
		if err != nil {
			return err
		}
		p.files[sdkDir+"/"+name] = b
		return nil
	})
}

func (p *project) cFiles() error {
	for _, f := range []struct{ name, text string }{
		{"main.c", cMainTemplate},
		{"block.hcl", manifestTemplate},
		{"Makefile", cMakefileTemplate},
		{".gitignore", "*.wasm\n"},
		{"README.md", cReadmeTemplate},
	} {
		if err := p.render(f.name, f.text); err != nil {
			return err
		}
	}
	h, err := blockhost.BlockSource.ReadFile("sdk/c/blockhost.h")
	if err != nil {
		return &exitErr{code: exitError, msg: "init: this blockhost has no C SDK: " + err.Error()}
	}
	p.files["blockhost.h"] = h
	return nil
}

// create writes the project. It refuses a Dir that exists and is not an
// empty directory, and creates every file exclusively, so that nothing of
// the user's is ever replaced; on failure it removes what it wrote.
func (p *project) create() (err error) {
	entries, rerr := os.ReadDir(p.Dir)
	switch {
	case rerr == nil && len(entries) > 0:
		return usageErrorf("init: %s exists and is not empty; choose a new NAME", p.Dir)
	case rerr != nil && !errors.Is(rerr, fs.ErrNotExist):
		if fi, serr := os.Stat(p.Dir); serr == nil && !fi.IsDir() {
			return usageErrorf("init: %s exists and is not a directory", p.Dir)
		}
		return usageErrorf("init: %v", rerr)
	}
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return usageErrorf("init: %v", err)
	}
	var written []string
	defer func() {
		if err != nil {
			for i := len(written) - 1; i >= 0; i-- {
				os.Remove(written[i])
			}
		}
	}()
	root, err := os.OpenRoot(p.Dir)
	if err != nil {
		return usageErrorf("init: %v", err)
	}
	defer root.Close()
	fail := func(err error) error { return &exitErr{code: exitError, msg: "init: " + err.Error()} }
	for _, name := range slices.Sorted(maps.Keys(p.files)) {
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return fail(err)
			}
		}
		f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fail(err)
		}
		written = append(written, filepath.Join(p.Dir, filepath.FromSlash(name)))
		_, err = f.Write(p.files[name])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fail(err)
		}
	}
	return nil
}

func (p *project) printNext(w io.Writer) {
	fmt.Fprintf(w, "created %s (%s block %q)\n\n", p.Dir, p.Lang, p.Name)
	fmt.Fprintf(w, "  cd %s\n", p.Dir)
	if p.Lang == "go" {
		fmt.Fprintf(w, "  make test    # go test: the handler, natively, with sdk/sdktest\n")
		fmt.Fprintf(w, "  make build   # %s.wasm (blockhost build . -o %s.wasm does the same)\n", p.Name, p.Name)
	} else {
		fmt.Fprintf(w, "  make build   # %s.wasm, with clang --target=wasm32-wasi\n", p.Name)
		fmt.Fprintf(w, "  make test    # runs it under blockhost and checks the greeting\n")
	}
	fmt.Fprintf(w, "  make run     # blockhost run --manifest block.hcl\n")
}

const goModTemplate = `module {{.Name}}

go 1.26

require github.com/blockhost/blockhost v0.0.0

// The blockhost module is not published: this points it at {{if .SDK}}a checkout{{else}}the copy of
// the SDK that blockhost {{.Version}} wrote in ` + sdkDir + `/{{end}}.
replace github.com/blockhost/blockhost => {{if .SDK}}{{.SDK}}{{else}}./` + sdkDir + `{{end}}
`

const goMainTemplate = `// Command {{.Name}} is a blockhost block: it greets someone by name.

// The host may start every step from a snapshot of the block taken after
// its initialisation; this lets the SDK give math/rand's global source a
// seed of each step's own (docs/security.md, "Snapshots").
//
//go:debug randseednop=0
package main

import (
	"context"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

// Input is the step's input, decoded from JSON.
type Input struct {
	Name string ` + "`json:\"name\"`" + `
}

// Output is the step's output, encoded as JSON.
type Output struct {
	Greeting string ` + "`json:\"greeting\"`" + `
}

func handle(ctx context.Context, in Input) (Output, error) {
	if in.Name == "" {
		return Output{}, sdk.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, ` + "`input has no \"name\"`" + `)
	}
	sdk.Logger{}.Info("greeting", "name", in.Name)
	return Output{Greeting: "hello, " + in.Name}, nil
}

func main() {
	sdk.RunJSON(handle)
}
`

const goTestTemplate = `package main

import (
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

// The handler runs natively, through the SDK's own code, against a fake
// host with the real host's rules (package sdktest).
func TestHandle(t *testing.T) {
	res := sdktest.Call(t, sdk.JSONHandler(handle), []byte(` + "`{\"name\":\"ana\"}`" + `))
	if res.Status != abi.StatusSuccess || string(res.Output) != ` + "`{\"greeting\":\"hello, ana\"}`" + ` {
		t.Fatalf("got %s %q %v", res.Status, res.Output, res.Err)
	}
	if v, _ := res.Logs[0].Value("name"); v != "ana" {
		t.Errorf("log record %s", res.Logs[0])
	}

	res = sdktest.Call(t, sdk.JSONHandler(handle), []byte(` + "`{}`" + `))
	if res.Err == nil || res.Err.Code != abi.CodeMissingRequiredField {
		t.Errorf("no name: got %s %v, want missing_required_field", res.Status, res.Err)
	}
}
`

const manifestTemplate = `# The block's manifest (docs/manifest.md): its module, limits and grants.
# Nothing is granted by default: no environment, files or network.
block "{{.Name}}" {
  module = "{{.Name}}.wasm"

  limits {
    timeout = "5s"
    memory  = "64MiB"
  }
}
`

const goMakefileTemplate = `#   make test    the native tests (go test, with sdk/sdktest)
#   make build   {{.Name}}.wasm: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared
#   make run     runs it under blockhost with its manifest

GO        ?= go
BLOCKHOST ?= blockhost

.DEFAULT_GOAL := build
.PHONY: build test run FORCE

build: {{.Name}}.wasm

# Go's build cache decides whether anything changed, so go build always runs.
# -buildmode=c-shared makes a reactor (docs/abi.md §2.1), which the host can
# start from a snapshot taken after initialisation; without it, a command.
{{.Name}}.wasm: FORCE
	GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 $(GO) build -trimpath -buildmode=c-shared -o $@ .

test:
	$(GO) test ./...

run: {{.Name}}.wasm
	$(BLOCKHOST) run --manifest block.hcl --input '{"name":"ana"}'
`

const goReadmeTemplate = `# {{.Name}}

A blockhost block in Go, created by ` + "`blockhost {{.Version}} init`" + `.

    make test    # the native test (main_test.go), with sdk/sdktest
    make build   # {{.Name}}.wasm
    make run     # blockhost run --manifest block.hcl --input '{"name":"ana"}'

The SDK is not published as a Go module; go.mod's replace directive points
it at {{if .SDK}}the checkout {{.SDK}}{{else}}the copy in ` + sdkDir + `/{{end}}. See docs/authoring.md of blockhost.
`

const cMainTemplate = `/*
 * {{.Name}} is a blockhost block in C: its input is a name as plain text,
 * its output {"greeting":"hello, NAME"}. Empty input ends the step as
 * error, missing_required_field, permanent. blockhost.h is the C SDK.
 */
#include "blockhost.h"

int main(void) {
	char *name = NULL;
	size_t len = 0;
	if (bh_input(&name, &len) != BH_OK) {
		return 1; /* the step is over, or the host failed: the host decides */
	}
	if (len == 0) {
		bh_error(BH_CODE_MISSING_REQUIRED_FIELD, BH_PERMANENT, "input is empty: want a name");
		return 0;
	}
	bh_log(BH_INFO, "greeting", "name", name, NULL);

	bh_buf greeting = {0}, out = {0};
	bh_buf_str(&greeting, "hello, ");
	bh_buf_str(&greeting, name);
	bh_buf_str(&out, "{\"greeting\":");
	bh_buf_json_string(&out, greeting.p);
	bh_buf_str(&out, "}");
	bh_output(out.p, out.len);
	return 0;
}
`

const cMakefileTemplate = `#   make build   {{.Name}}.wasm, with clang --target=wasm32-wasi
#   make test    runs it under blockhost and checks the greeting
#   make run     runs it under blockhost with its manifest
#
# clang must target wasm32-wasi: on Debian, apt-get install clang lld
# wasi-libc libclang-rt-dev-wasm32. wasm-ld's default stack is 64 KiB;
# -z stack-size raises it (here to 1 MiB).

CLANG     ?= clang
CFLAGS    ?= --target=wasm32-wasi -O2 -Wall -Wl,-z,stack-size=1048576
BLOCKHOST ?= blockhost

.DEFAULT_GOAL := build
.PHONY: build test run

build: {{.Name}}.wasm

{{.Name}}.wasm: main.c blockhost.h
	$(CLANG) $(CFLAGS) -o $@ main.c

test: {{.Name}}.wasm
	$(BLOCKHOST) run --input ana {{.Name}}.wasm | grep -q '"greeting": "hello, ana"'
	@echo ok

run: {{.Name}}.wasm
	$(BLOCKHOST) run --manifest block.hcl --input ana
`

const cReadmeTemplate = `# {{.Name}}

A blockhost block in C, created by ` + "`blockhost {{.Version}} init --lang c`" + `.
blockhost.h is the header-only C SDK of that blockhost.

    make build   # {{.Name}}.wasm (needs clang for wasm32-wasi, lld and wasi-libc)
    make test    # runs it under blockhost and checks the greeting
    make run     # blockhost run --manifest block.hcl --input ana
`

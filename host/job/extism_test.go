package job_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// An Extism plugin's function and config: the manifest's, with the
// overrides (--func, --config) over them.
func TestService_extismPlugin(t *testing.T) {
	plugin := testwasm.WATFile(t, filepath.Join("..", "testdata", "extism.wat"))
	dir := t.TempDir()
	manifestPath := filepath.Join(dir, "plugin.hcl")
	src := "block \"plugin\" {\n  module = \"" + plugin + "\"\n  function = \"greeting\"\n  config {\n    greeting = \"from the manifest\"\n  }\n}\n"
	if err := os.WriteFile(manifestPath, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		overrides job.Settings
		req       job.Request
		output    string
		badField  bool
	}{
		{name: "manifest", req: job.Request{Manifest: manifestPath}, output: "from the manifest"},
		{name: "config override", overrides: job.Settings{Config: map[string]string{"greeting": "from a flag"}},
			req: job.Request{Manifest: manifestPath}, output: "from a flag"},
		{name: "function override", overrides: job.Settings{Function: "echo"},
			req: job.Request{Manifest: manifestPath, InputText: ptr("echoed")}, output: "echoed"},
		{name: "bare module", overrides: job.Settings{Function: "echo"}, req: job.Request{Block: plugin, InputText: ptr("x")}, output: "x"},
		{name: "no function", req: job.Request{Block: plugin}, badField: true},
		{name: "unknown function", overrides: job.Settings{Function: "nope"}, req: job.Request{Manifest: manifestPath}, badField: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := newService(t, job.NewConfig().WithOverrides(tt.overrides))
			xr, err := svc.Resolve(context.Background(), tt.req)
			if tt.badField {
				var fe *job.FieldError
				if !errors.As(err, &fe) || fe.Field != "function" {
					t.Fatalf("Resolve: %v, want a FieldError for function", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			res := svc.Start(context.Background(), xr).Result()
			if res.Status != abi.StatusSuccess || res.OutputText == nil || *res.OutputText != tt.output {
				t.Fatalf("%s %v %v; want output %q", res.Status, res.OutputText, res.Error, tt.output)
			}
		})
	}
}

func ptr(s string) *string { return &s }

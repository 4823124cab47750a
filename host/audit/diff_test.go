package audit

import (
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/manifest"
)

func parse(t *testing.T, src string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(src), "/r/m.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const diffBase = `block "b" {
  module = "fetch.wasm"
  sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
  limits {
    memory = "64MiB"
  }
  capabilities {
    env = { TOKEN = "a" }
    http {
      grant "api" {
        host              = "api.example.com"
        methods           = ["GET"]
        paths             = ["/v1/"]
        sensitive_headers = ["X-Api-Key"]
      }
      grant "old" {
        host = "old.example.com"
      }
    }
    filesystem {
      dir "data" {
        host = "/srv/data"
        mode = "ro"
      }
    }
  }
}
`

// TestDiff: each kind of change is reported with its direction; a change
// that widens is never reported as neutral or revoking.
func TestDiff(t *testing.T) {
	old := parse(t, diffBase)
	if got := Diff(old, parse(t, diffBase)); len(got) != 0 {
		t.Fatalf("no change: %v", got)
	}
	tests := []struct {
		name     string
		from, to string // replaced in diffBase
		want     []string
	}{
		{"method added", `methods           = ["GET"]`, `methods           = ["GET", "POST"]`, []string{`+ http grant "api": methods: GET → GET,POST (adds POST)`}},
		{"method removed", `methods           = ["GET"]`, `methods           = ["HEAD"]`, []string{
			`+ http grant "api": methods: GET → HEAD (adds HEAD)`, `- http grant "api": methods: GET → HEAD (removes GET)`}},
		{"path widened", `paths             = ["/v1/"]`, `paths             = ["/"]`, []string{`+ http grant "api": paths: /v1/ → / (reaches /)`}},
		{"path narrowed", `paths             = ["/v1/"]`, `paths             = ["/v1/status"]`, []string{`- http grant "api": paths: /v1/ → /v1/status (no longer reaches all of /v1/)`}},
		{"wildcard", `host              = "api.example.com"`, `host              = "*.example.com"`, []string{`+ http grant "api": host: api.example.com → *.example.com (a wildcard over the old host)`}},
		{"ranges", `paths             = ["/v1/"]`, "paths = [\"/v1/\"]\n        allow_ranges = [\"10.0.0.0/8\"]", []string{`+ http grant "api": allow_ranges: (none) → 10.0.0.0/8 (reaches 10.0.0.0/8)`}},
		{"sensitive header dropped", `sensitive_headers = ["X-Api-Key"]`, `sensitive_headers = []`, []string{`+ http grant "api": sensitive_headers: x-api-key → (none) (headers stripped on a redirect to another origin)`}},
		{"redirects", `paths             = ["/v1/"]`, "paths = [\"/v1/\"]\n        redirects = 2", []string{`+ http grant "api": redirects: 0 → 2`}},
		{"grant removed", "      grant \"old\" {\n        host = \"old.example.com\"\n      }\n", "", []string{`- http grant "old" (removed: GET,HEAD https://old.example.com/)`}},
		{"grant added", `grant "old"`, `grant "new"`, []string{`- http grant "old" (removed: GET,HEAD https://old.example.com/)`, `+ http grant "new" (added: GET,HEAD https://old.example.com/)`}},
		{"rw", `mode = "ro"`, `mode = "rw"`, []string{`+ filesystem dir "data": mode: ro → rw (may write, create and remove)`}},
		{"dir widened", `host = "/srv/data"`, `host = "/srv"`, []string{`+ filesystem dir "data": host: /srv/data → /srv (a directory holding the old one)`}},
		{"pin dropped", "  sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n", "", []string{
			`+ block: sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 → (none) (the pin is gone: any module runs)`}},
		{"env value", `TOKEN = "a"`, `TOKEN = "b"`, []string{`~ env TOKEN (value changed (not shown))`}},
		{"env added", `TOKEN = "a"`, `TOKEN = "a", OTHER = "x"`, []string{`+ env OTHER (a new variable)`}},
		{"memory", `memory = "64MiB"`, `memory = "1GiB"`, []string{`+ limits: memory: 67108864 → 1073741824`}},
		{"timeout set above the default", `memory = "64MiB"`, "memory = \"64MiB\"\n    timeout = \"1h\"", []string{`+ limits: timeout: 30s (default) → 1h0m0s`}},
		{"memory unset, the default", "    memory = \"64MiB\"\n", "", []string{`~ limits: memory: 67108864 → 67108864 (default)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(diffBase, tc.from) {
				t.Fatalf("%q is not in the base manifest", tc.from)
			}
			changes := Diff(old, parse(t, strings.Replace(diffBase, tc.from, tc.to, 1)))
			got := make([]string, len(changes))
			for i, c := range changes {
				got[i] = c.String()
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("changes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

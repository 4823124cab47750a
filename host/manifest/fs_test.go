package manifest

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/fscap"
)

// resizeGrants is what testdata/fs.hcl and testdata/fs.json both say.
var resizeGrants = []fscap.Grant{
	{Name: "in", HostDir: filepath.Join("testdata", "photos"), GuestPath: "/in", ReadOnly: true},
	{Name: "out", HostDir: "/srv/thumbnails", GuestPath: "/thumbs", Timeout: 2 * time.Second,
		Quota: fscap.Quota{WriteBytes: 16 << 20, Files: 100, FileSize: 4 << 20}},
}

func TestParseFile_filesystem(t *testing.T) {
	for _, path := range []string{"testdata/fs.hcl", "testdata/fs.json"} {
		t.Run(path, func(t *testing.T) {
			m, err := ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.FS, resizeGrants) {
				t.Fatalf("FS = %+v\nwant %+v", m.FS, resizeGrants)
			}
		})
	}
}

func TestParse_filesystemErrors(t *testing.T) {
	wrap := func(dirs string) string {
		return "block \"m\" {\n  module = \"m\"\n  capabilities {\n    filesystem {\n" + dirs + "    }\n  }\n}\n"
	}
	tests := []struct {
		name string
		src  string
		at   []pos
	}{
		{"missing host", wrap("      dir \"a\" {\n      }\n"), []pos{{5, 15}}},
		{"empty host", wrap("      dir \"a\" {\n        host = \"\"\n      }\n"), []pos{{6, 16}}},
		{"bad mode", wrap("      dir \"a\" {\n        host = \"/a\"\n        mode = \"wo\"\n      }\n"), []pos{{7, 16}}},
		{"relative guest", wrap("      dir \"a\" {\n        host = \"/a\"\n        guest = \"a\"\n      }\n"), []pos{{7, 17}}},
		{"dotdot guest", wrap("      dir \"a\" {\n        host = \"/a\"\n        guest = \"/a/../b\"\n      }\n"), []pos{{7, 17}}},
		{"bad name", wrap("      dir \"a/../b\" {\n        host = \"/a\"\n      }\n"), []pos{{5, 11}}},
		{"bad timeout", wrap("      dir \"a\" {\n        host = \"/a\"\n        timeout = \"soon\"\n      }\n"), []pos{{7, 19}}},
		{"bad quota", wrap("      dir \"a\" {\n        host = \"/a\"\n        quota {\n          write_bytes = \"lots\"\n          files = 0\n        }\n      }\n"), []pos{{8, 25}, {9, 19}}},
		{"unknown quota", wrap("      dir \"a\" {\n        host = \"/a\"\n        quota {\n          inodes = 3\n        }\n      }\n"), []pos{{8, 11}}},
		{"duplicate", wrap("      dir \"a\" {\n        host = \"/a\"\n      }\n      dir \"a\" {\n        host = \"/b\"\n      }\n"), []pos{{8, 11}}},
		{"overlap", wrap("      dir \"a\" {\n        host = \"/a\"\n      }\n      dir \"b\" {\n        host = \"/b\"\n        guest = \"/a\"\n      }\n"), []pos{{10, 17}}},
		{"unknown attribute", wrap("      dir \"a\" {\n        host = \"/a\"\n        path = \"/x\"\n      }\n"), []pos{{7, 9}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "m.hcl")
			var perr *Error
			if !errors.As(err, &perr) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse error %v", err)
			}
			var got []pos
			for _, d := range perr.Diagnostics {
				got = append(got, pos{d.Line, d.Column})
			}
			if !reflect.DeepEqual(got, tt.at) {
				t.Fatalf("diagnostics at %v, want %v:\n%v", got, tt.at, err)
			}
		})
	}
}

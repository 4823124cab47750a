// Command fsblock is an SDK block that does to the file system what its
// input says, for the filesystem capability's tests. Input:
//
//	{"op": "read", "path": "/data/in.txt"}        one operation; a failure is the step's error
//	{"ops": [{"op": "read", "path": ...}, ...]}   several; each result is reported in the output
//
// Operations: read, readfs (through sdk.FS), fstest (testing/fstest's
// checks of sdk.FS, expecting the files listed in data), write, create, append, stat,
// list, remove, mkdir, rename (path to to), loop_read (read path for ms
// milliseconds, reporting what was seen), bigwrite (mib MiB to a temporary
// name in chunks, then rename onto path).
package main

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing/fstest"
	"time"

	"github.com/blockhost/blockhost/sdk"
)

type op struct {
	Op   string `json:"op"`
	Path string `json:"path"`
	// PathB64 replaces Path when set: JSON strings cannot carry every
	// byte a path may hold.
	PathB64 []byte `json:"path_b64,omitempty"`
	To      string `json:"to,omitempty"`
	Data    string `json:"data,omitempty"`
	MS      int    `json:"ms,omitempty"`
	MiB     int    `json:"mib,omitempty"`
}

type input struct {
	op
	Ops []op `json:"ops,omitempty"`
}

type result struct {
	Op      string   `json:"op"`
	Path    string   `json:"path"`
	Result  string   `json:"result"`
	Code    string   `json:"code,omitempty"`
	Message string   `json:"message,omitempty"`
	Data    string   `json:"data,omitempty"`
	Seen    []string `json:"seen,omitempty"`
	Reads   int      `json:"reads,omitempty"`
	Denied  int      `json:"denied,omitempty"`
}

type output struct {
	Result  *result  `json:"result,omitempty"`
	Results []result `json:"results,omitempty"`
}

func main() {
	sdk.RunJSON(func(ctx context.Context, in input) (output, error) {
		if in.Ops == nil {
			r, err := do(ctx, in.op)
			if err != nil {
				return output{}, err
			}
			return output{Result: &r}, nil
		}
		var out output
		for _, o := range in.Ops {
			r, err := do(ctx, o)
			if err != nil {
				r = result{Op: o.Op, Path: o.Path, Result: "error", Message: err.Error()}
				var fe *sdk.FSError
				if errors.As(err, &fe) {
					r.Result, r.Code = fe.Result.String(), fe.Code.Name()
				}
			}
			out.Results = append(out.Results, r)
		}
		return out, nil
	})
}

func do(ctx context.Context, o op) (result, error) {
	if o.PathB64 != nil {
		o.Path = string(o.PathB64)
	}
	r := result{Op: o.Op, Path: o.Path, Result: "ok"}
	var err error
	switch o.Op {
	case "read":
		var b []byte
		b, err = sdk.ReadFile(o.Path)
		r.Data = string(b)
	case "readfs":
		var b []byte
		b, err = fs.ReadFile(sdk.FS(), strings.TrimPrefix(o.Path, "/"))
		r.Data = string(b)
	case "fstest":
		err = fstest.TestFS(sdk.FS(), strings.Split(o.Data, ",")...)
	case "walk":
		err = fs.WalkDir(sdk.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			r.Seen = append(r.Seen, p)
			return nil
		})
	case "write":
		err = sdk.WriteFile(o.Path, []byte(o.Data))
	case "create":
		err = sdk.CreateFile(o.Path, []byte(o.Data))
	case "append":
		err = sdk.AppendFile(o.Path, []byte(o.Data))
	case "stat":
		var info fs.FileInfo
		if info, err = sdk.Stat(o.Path); err == nil {
			r.Data = info.Mode().String()
		}
	case "list":
		var ents []fs.DirEntry
		ents, err = sdk.ReadDir(o.Path)
		for _, e := range ents {
			r.Seen = append(r.Seen, e.Name())
		}
	case "remove":
		err = sdk.Remove(o.Path)
	case "mkdir":
		err = sdk.MkdirAll(o.Path)
	case "rename":
		err = sdk.Rename(o.Path, o.To)
	case "loop_read":
		seen := map[string]bool{}
		for end := time.Now().Add(time.Duration(o.MS) * time.Millisecond); time.Now().Before(end); {
			b, err := sdk.ReadFile(o.Path)
			r.Reads++
			if errors.Is(err, sdk.ErrDenied) {
				r.Denied++
			}
			if err == nil && !seen[string(b)] {
				seen[string(b)] = true
				r.Seen = append(r.Seen, string(b))
			}
		}
	case "bigwrite":
		tmp := o.Path + ".part"
		chunk := make([]byte, 1<<20)
		if err = sdk.WriteFile(tmp, chunk); err != nil {
			break
		}
		for i := 1; i < o.MiB; i++ {
			if err = sdk.AppendFile(tmp, chunk); err != nil {
				break
			}
		}
		if err == nil {
			err = sdk.Rename(tmp, o.Path)
		}
	default:
		return r, sdk.Errorf(1001, 0, "unknown op %q", o.Op)
	}
	return r, err
}

// Command fswasi is a plain WASI command (no SDK) that does to its
// preopened directories what the JSON on its standard input says, with
// the os package and, for "raw" operations, with WASI calls on the first
// preopen's descriptor that skip Go's own path cleaning. It prints one
// JSON result per operation. Input:
//
//	{"ops": [{"op": "read", "path": "/data/in.txt"}, ...]}
//
// Operations: read, write, append, mkdir, remove, rename (path to to),
// list, stat, raw_read and raw_write (path relative to the preopen),
// loop_read (read path for ms milliseconds). "exit" makes the program exit
// with the code of the first failed operation.
package main

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"syscall"
	"time"
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

type result struct {
	Op     string   `json:"op"`
	Path   string   `json:"path"`
	Result string   `json:"result"`
	Errno  string   `json:"errno,omitempty"`
	Error  string   `json:"error,omitempty"`
	Data   string   `json:"data,omitempty"`
	Seen   []string `json:"seen,omitempty"`
	Reads  int      `json:"reads,omitempty"`
	Failed int      `json:"failed,omitempty"`
}

// preopen is the descriptor of the first preopened directory.
const preopen = 3

func main() {
	var in struct {
		Ops  []op `json:"ops"`
		Exit bool `json:"exit"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		os.Stderr.WriteString("bad input: " + err.Error() + "\n")
		os.Exit(2)
	}
	var out []result
	failed := false
	for _, o := range in.Ops {
		if o.PathB64 != nil {
			o.Path = string(o.PathB64)
		}
		r := result{Op: o.Op, Path: o.Path, Result: "ok"}
		err := do(o, &r)
		if err != nil {
			failed = true
			r.Result, r.Error = "error", err.Error()
			var errno syscall.Errno
			if errors.As(err, &errno) {
				r.Errno = errnoName(errno)
			}
		}
		out = append(out, r)
	}
	json.NewEncoder(os.Stdout).Encode(out)
	if in.Exit && failed {
		os.Exit(1)
	}
}

func do(o op, r *result) error {
	switch o.Op {
	case "read":
		b, err := os.ReadFile(o.Path)
		r.Data = string(b)
		return err
	case "write":
		return os.WriteFile(o.Path, []byte(o.Data), 0o644)
	case "append":
		f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(o.Data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	case "mkdir":
		return os.Mkdir(o.Path, 0o755)
	case "remove":
		return os.Remove(o.Path)
	case "rename":
		return os.Rename(o.Path, o.To)
	case "stat":
		info, err := os.Stat(o.Path)
		if err == nil {
			r.Data = info.Mode().String()
		}
		return err
	case "list":
		ents, err := os.ReadDir(o.Path)
		for _, e := range ents {
			r.Seen = append(r.Seen, e.Name())
		}
		return err
	case "raw_read":
		fd, err := syscall.Openat(preopen, o.Path, syscall.O_RDONLY, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		f := os.NewFile(uintptr(fd), o.Path)
		b, err := io.ReadAll(f)
		r.Data = string(b)
		return err
	case "raw_write":
		fd, err := syscall.Openat(preopen, o.Path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = syscall.Write(fd, []byte(o.Data))
		if cerr := syscall.Close(fd); err == nil {
			err = cerr
		}
		return err
	case "loop_read":
		seen := map[string]bool{}
		for end := time.Now().Add(time.Duration(o.MS) * time.Millisecond); time.Now().Before(end); {
			b, err := os.ReadFile(o.Path)
			r.Reads++
			if err != nil {
				r.Failed++
			} else if !seen[string(b)] {
				seen[string(b)] = true
				r.Seen = append(r.Seen, string(b))
			}
		}
		return nil
	case "bigwrite":
		f, err := os.Create(o.Path)
		if err != nil {
			return err
		}
		chunk := make([]byte, 1<<20)
		for i := 0; i < o.MiB; i++ {
			if _, err := f.Write(chunk); err != nil {
				f.Close()
				return err
			}
		}
		return f.Close()
	}
	return errors.New("unknown op " + o.Op)
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EACCES:
		return "EACCES"
	case syscall.EEXIST:
		return "EEXIST"
	case syscall.EROFS:
		return "EROFS"
	case syscall.EIO:
		return "EIO"
	case syscall.EBADF:
		return "EBADF"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.ENOTDIR:
		return "ENOTDIR"
	case syscall.EISDIR:
		return "EISDIR"
	case syscall.ELOOP:
		return "ELOOP"
	case syscall.ENOTCAPABLE:
		return "ENOTCAPABLE"
	case syscall.ENAMETOOLONG:
		return "ENAMETOOLONG"
	}
	return e.Error()
}

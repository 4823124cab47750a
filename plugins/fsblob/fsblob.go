// Package fsblob is the built-in blocks fs.blob_put and fs.blob_get: a
// blob store in a directory granted to the step. Importing it registers
// both.
//
// A blob is content-addressed — stored at DIR/sha256/AB/ABCDEF… and named
// by the key "sha256:ABCDEF…", its SHA-256 in lower-case hex — or named —
// stored at DIR/NAME. DIR is a guest path inside one of the step's
// filesystem grants.
//
// fs.blob_put stores the step's input, byte for byte:
//
//	blockhost run --allow-dir ./blobs:/blobs:rw fs.blob_put --input @photo.jpg
//	blockhost run --allow-dir ./blobs:/blobs:rw fs.blob_put --input @report.pdf -- --name reports/q3.pdf
//
// Arguments (after the block's name, or Step.Args): --dir DIR, needed only
// when the step has more than one grant; --name NAME to store a named
// blob, whose parent directories are created; --if-absent to fail with
// error code execution_failed if a named blob exists. Its output is JSON:
//
//	{"key": "sha256:…", "path": "/blobs/sha256/ab/ab…", "size": 1234,
//	 "sha256": "ab…", "created": true}
//
// created is false when a content-addressed blob was already stored with
// the same content; nothing is written then.
//
// fs.blob_get returns a blob's bytes as its output (so the step's output
// cap, --output-limit, must fit the blob). It takes --dir and one of --key
// KEY or --name NAME as arguments, or, with no arguments, its input as
// JSON: {"dir": "/blobs", "key": "sha256:…"} or {"name": "…"}. A
// content-addressed blob is checked against its key as it is read; one
// that does not match fails with resource_unavailable.
//
// Both go through package fscap under the step's grants, exactly as a
// WebAssembly block's host calls do: the same confinement, read-only
// flags, quotas, timeouts, atomic writes and logs. A stored blob is never
// seen half-written.
package fsblob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/fscap"
	"github.com/blockhost/blockhost/plugins"
)

// Names of the blocks.
const (
	PutName = "fs.blob_put"
	GetName = "fs.blob_get"
)

func init() {
	plugins.Register(plugins.Plugin{Name: PutName, Summary: "store the input as a blob in a granted directory", Run: Put})
	plugins.Register(plugins.Plugin{Name: GetName, Summary: "return a blob from a granted directory", Run: Get})
}

// PutResult is fs.blob_put's output.
type PutResult struct {
	Key     string `json:"key"`
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	Created bool   `json:"created"`
}

// GetRequest is fs.blob_get's input when it has no arguments.
type GetRequest struct {
	Dir  string `json:"dir,omitempty"`
	Key  string `json:"key,omitempty"`
	Name string `json:"name,omitempty"`
}

const keyPrefix = "sha256:"

func invalid(format string, args ...any) error {
	return abi.NewError(abi.CodeInvalidInput, abi.ClassPermanent, fmt.Sprintf(format, args...))
}

// session opens the step's grants and picks the blob directory.
func session(ctx context.Context, call *host.Call, dir string) (*fscap.Session, string, error) {
	grants := call.Step.Grants.FS
	if len(grants) == 0 {
		return nil, "", abi.NewError(abi.CodePermissionDenied, abi.ClassPermanent,
			"no directory is granted to the step (use --allow-dir or the manifest's filesystem section)")
	}
	s, err := fscap.Open(ctx, grants, fscap.Config{Logger: call.Logger, Audit: call.Audit})
	if err != nil {
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent, err.Error())
	}
	if dir == "" {
		if len(grants) > 1 {
			s.Close()
			return nil, "", invalid("the step has %d directories granted; choose one with --dir", len(grants))
		}
		dir = s.Grants()[0].GuestPath
	}
	if !strings.HasPrefix(dir, "/") {
		s.Close()
		return nil, "", invalid("--dir %q is not an absolute guest path", dir)
	}
	return s, strings.TrimSuffix(dir, "/"), nil
}

// blobPath returns where a blob lives.
func blobPath(dir, name, sum string) (string, error) {
	if name != "" {
		if strings.HasPrefix(name, "/") {
			return "", invalid("--name %q must be relative to the blob directory", name)
		}
		return join(dir, name), nil
	}
	return join(dir, "sha256/"+sum[:2]+"/"+sum), nil
}

func join(dir, rel string) string {
	if dir == "" || dir == "/" {
		return "/" + rel
	}
	return dir + "/" + rel
}

// Put is fs.blob_put.
func Put(ctx context.Context, call *host.Call) ([]byte, error) {
	fl := flag.NewFlagSet(PutName, flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	dir := fl.String("dir", "", "blob directory")
	name := fl.String("name", "", "name of a named blob")
	ifAbsent := fl.Bool("if-absent", false, "fail if a named blob exists")
	if err := fl.Parse(call.Step.Args); err != nil {
		return nil, invalid("%s: %v (its arguments are [--dir DIR] [--name NAME] [--if-absent]; "+
			"options of blockhost run, such as --input, go before the block's name)", PutName, err)
	}
	if fl.NArg() > 0 {
		return nil, invalid("%s: unexpected argument %q", PutName, fl.Arg(0))
	}
	s, base, err := session(ctx, call, *dir)
	if err != nil {
		return nil, err
	}
	defer s.Close()

	data := call.Step.Input
	sumBytes := sha256.Sum256(data)
	sum := hex.EncodeToString(sumBytes[:])
	p, err := blobPath(base, *name, sum)
	if err != nil {
		return nil, err
	}
	res := PutResult{Key: keyPrefix + sum, Path: p, Size: int64(len(data)), SHA256: sum, Created: true}
	if *name != "" {
		res.Key = *name
		// created says whether the name is new: a named put that replaces
		// a blob reports false, as docs/capabilities.md says.
		switch _, err := s.Stat(ctx, p); {
		case err == nil:
			res.Created = false
		case !errors.Is(err, fscap.ErrNotFound):
			return nil, fscap.StepError(err)
		}
	} else if same, err := stored(ctx, s, p, sumBytes, int64(len(data))); err != nil {
		return nil, err
	} else if same {
		res.Created = false
		call.Logger.Info("blob already stored", "key", res.Key, "path", p, "bytes", res.Size)
		return json.Marshal(res)
	}
	if err := mkdirAll(ctx, s, path.Dir(p), base); err != nil {
		return nil, fscap.StepError(err)
	}
	var flags fscap.WriteFlag
	if *ifAbsent {
		flags = fscap.WriteExclusive
	}
	if err := s.WriteFile(ctx, p, data, flags); err != nil {
		return nil, fscap.StepError(err)
	}
	call.Logger.Info("blob stored", "key", res.Key, "path", p, "bytes", res.Size)
	return json.Marshal(res)
}

// stored reports whether the content-addressed blob at p already holds
// content of this sum and size; a blob that does not is rewritten.
func stored(ctx context.Context, s *fscap.Session, p string, sum [sha256.Size]byte, size int64) (bool, error) {
	info, err := s.Stat(ctx, p)
	switch {
	case errors.Is(err, fscap.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fscap.StepError(err)
	case !info.Mode().IsRegular() || info.Size() != size:
		return false, nil
	}
	h := sha256.New()
	if _, err := s.ReadAt(ctx, p, 0, size+1, func(b []byte) error { h.Write(b); return nil }); err != nil {
		return false, fscap.StepError(err)
	}
	return bytes.Equal(h.Sum(nil), sum[:]), nil
}

// mkdirAll creates dir and its parents below base, the blob directory.
func mkdirAll(ctx context.Context, s *fscap.Session, dir, base string) error {
	if dir == base || dir == "/" || dir == "." {
		return nil
	}
	if info, err := s.Stat(ctx, dir); err == nil && info.IsDir() {
		return nil
	}
	if err := mkdirAll(ctx, s, path.Dir(dir), base); err != nil {
		return err
	}
	if err := s.Mkdir(ctx, dir); err != nil && !errors.Is(err, fscap.ErrExist) {
		return err
	}
	return nil
}

// Get is fs.blob_get.
func Get(ctx context.Context, call *host.Call) ([]byte, error) {
	var req GetRequest
	if len(call.Step.Args) > 0 {
		fl := flag.NewFlagSet(GetName, flag.ContinueOnError)
		fl.SetOutput(io.Discard)
		fl.StringVar(&req.Dir, "dir", "", "blob directory")
		fl.StringVar(&req.Key, "key", "", "key of a content-addressed blob")
		fl.StringVar(&req.Name, "name", "", "name of a named blob")
		if err := fl.Parse(call.Step.Args); err != nil {
			return nil, invalid("%s: %v (its arguments are [--dir DIR] --key KEY | --name NAME; "+
				"options of blockhost run, such as --input, go before the block's name)", GetName, err)
		}
		if fl.NArg() > 0 {
			return nil, invalid("%s: unexpected argument %q", GetName, fl.Arg(0))
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(call.Step.Input))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, invalid(`%s: input must be {"key": "sha256:…"} or {"name": "…"}, optionally with "dir": %v`, GetName, err)
		}
	}
	var want []byte
	switch {
	case (req.Key == "") == (req.Name == ""):
		return nil, abi.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, GetName+": give exactly one of key and name")
	case req.Key != "":
		hexSum, ok := strings.CutPrefix(req.Key, keyPrefix)
		b, err := hex.DecodeString(hexSum)
		if !ok || err != nil || len(b) != sha256.Size || hexSum != strings.ToLower(hexSum) {
			return nil, invalid("%s: key %q is not sha256: followed by 64 lower-case hex digits", GetName, req.Key)
		}
		want = b
	}
	s, base, err := session(ctx, call, req.Dir)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	p, err := blobPath(base, req.Name, hex.EncodeToString(want))
	if err != nil {
		return nil, err
	}
	data, err := s.ReadFile(ctx, p, int64(call.Step.Limits.Output))
	if err != nil {
		if errors.Is(err, fscap.ErrQuota) {
			return nil, abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent,
				fmt.Sprintf("%s: the blob is larger than the output limit of %d bytes (raise --output-limit)", GetName, call.Step.Limits.Output))
		}
		return nil, fscap.StepError(err)
	}
	if want != nil {
		if got := sha256.Sum256(data); !bytes.Equal(got[:], want) {
			call.Logger.Error("stored blob does not match its key", "key", req.Key, "path", p)
			return nil, abi.NewError(abi.CodeResourceUnavailable, abi.ClassPermanent,
				fmt.Sprintf("%s: the blob stored at %s does not match its key", GetName, p))
		}
	}
	call.Logger.Info("blob read", "path", p, "bytes", len(data))
	return data, nil
}

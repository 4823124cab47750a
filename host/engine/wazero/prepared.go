package wazero

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/blockhost/blockhost/host/engine/internal/datamerge"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/internal/populate"
)

// A module is prepared for wazero before it is compiled: interruption
// checks added (addInterruptChecks), data segments merged, the start
// function exported (exportStart) and the memory image split out. For a
// Go block that is about 100 ms of CPU, which every process paid at its
// first Load even when wazero's compiled code came from the disk cache.
// With a disk cache the prepared module is kept there too, beside the
// compiled code, and a later process reads it instead of preparing the
// module again (RATIONALE.md, "Why does the wazero engine keep the
// rewritten module on disk?").
//
// The entry is the cache's own (checked, and bound to a key naming the
// engine, the rewrite's version and this very build, preparedKey), stored
// under a digest derived from the module's (preparedSum), so that it is
// pruned and aged like the compiled code. Its payload is preparedMagic, a
// flag byte (1: the start function was exported), the image's length as 8
// bytes little-endian, the image and the prepared module.
//
// The build is part of the key because the prepared module is what keeps
// a guest interruptible and what precheck and the rewrite refuse is never
// looked at again: wazero's compiled code is found by the prepared bytes'
// own hash, so a rewrite changed without a new rewriteVersion never
// reused old code, but it would reuse an old prepared module. With the Go
// build ID, which changes with any code linked into the program, every
// build prepares each module once for itself.
type prepared struct {
	src, img []byte
	start    bool
}

// preparedKey is the engine key of prepared entries: the compiled code's
// (cacheKey) and this build's Go build ID. ok is false where the build ID
// cannot be read; there is then no cache of prepared modules.
func preparedKey(version string) (string, bool) {
	id := buildID()
	if id == "" {
		return "", false
	}
	return cacheKey(version) + "; build " + id, true
}

// buildID is the Go build ID of the running executable, from its ELF note
// (go tool buildid prints the same), or "" where it cannot be read.
var buildID = sync.OnceValue(func() string {
	path, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return ""
	}
	note, err := sec.Data()
	if err != nil || len(note) < 16 {
		return ""
	}
	// An ELF note: name size, description size, type, then the name
	// ("Go\x00", padded to 4 bytes) and the description, the ID.
	nameSize := f.ByteOrder.Uint32(note[0:4])
	descSize := f.ByteOrder.Uint32(note[4:8])
	start := 12 + (uint64(nameSize)+3)/4*4
	if nameSize != 4 || string(note[12:16]) != "Go\x00\x00" || descSize == 0 || start+uint64(descSize) > uint64(len(note)) {
		return ""
	}
	return string(note[start : start+uint64(descSize)])
})

// preparedMagic begins every prepared entry's payload, naming what it is.
const preparedMagic = "blockhost prepared module\n"

// preparedSum is the digest the prepared form of the module whose SHA-256
// is sum is kept under.
func preparedSum(sum diskcache.Sum) diskcache.Sum {
	return sha256.Sum256(append([]byte(preparedMagic), sum[:]...))
}

func encodePrepared(p prepared) []byte {
	out := make([]byte, 0, len(preparedMagic)+1+8+len(p.img)+len(p.src))
	out = append(out, preparedMagic...)
	flag := byte(0)
	if p.start {
		flag = 1
	}
	out = append(out, flag)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(p.img)))
	out = append(out, p.img...)
	return append(out, p.src...)
}

// decodePrepared splits a payload; the slices are the payload's.
func decodePrepared(b []byte) (prepared, error) {
	rest, ok := bytes.CutPrefix(b, []byte(preparedMagic))
	if !ok || len(rest) < 9 || rest[0] > 1 {
		return prepared{}, errors.New("not a prepared module")
	}
	n := binary.LittleEndian.Uint64(rest[1:9])
	rest = rest[9:]
	if n > uint64(len(rest)) {
		return prepared{}, fmt.Errorf("image of %d bytes in a payload of %d", n, len(rest))
	}
	p := prepared{start: b[len(preparedMagic)] == 1, img: rest[:n], src: rest[n:]}
	if len(p.img) == 0 {
		p.img = nil
	}
	return p, nil
}

// preparedHits counts prepared modules read from the disk cache, for this
// package's tests.
var preparedHits atomic.Int64

// prepare returns wasm prepared for wazero, from the disk cache when it
// holds it (sum is wasm's SHA-256), and the function that releases what
// the prepared module was read into, which the caller must call once
// wazero has compiled it. The image is the caller's to keep. cached says
// it came from the cache; one that did not is stored once it compiles
// (storePrepared), so that a module wazero refuses leaves no entry.
func (e *Engine) prepare(ctx context.Context, wasm []byte, sum diskcache.Sum) (p prepared, release func(), cached bool, err error) {
	if d := e.disk; d != nil && d.prepared.On() {
		// Read into memory of its own, freed once compiled: wazero keeps
		// nothing of the bytes it compiles (it decodes them into copies).
		// The image, which the module keeps, is copied out.
		if buf, release, ok := d.prepared.LoadBuffer(preparedSum(sum)); ok {
			p, err := decodePrepared(buf)
			if err == nil {
				if p.img != nil {
					img := populate.Kept(len(p.img))
					copy(img, p.img)
					p.img = img
				}
				preparedHits.Add(1)
				return p, release, true, nil
			}
			release()
			d.prepared.Reject(preparedSum(sum), err)
		}
	}
	p, err = e.prepareFresh(ctx, wasm)
	return p, func() {}, false, err
}

// storePrepared keeps p, prepared from the module whose SHA-256 is sum and
// compiled, in the disk cache.
func (e *Engine) storePrepared(sum diskcache.Sum, p prepared) {
	if d := e.disk; d != nil {
		d.prepared.Store(preparedSum(sum), encodePrepared(p))
	}
}

// prepareFresh prepares wasm.
func (e *Engine) prepareFresh(ctx context.Context, wasm []byte) (prepared, error) {
	if err := precheck(wasm); err != nil {
		return prepared{}, err
	}
	src, err := addInterruptChecks(wasm)
	if err != nil {
		// What is wrong with a module is wazero's to say, in its own
		// words, as for any module; one wazero would take but the rewrite
		// cannot is refused too, since it could not be interrupted.
		if cerr := e.validate(ctx, wasm); cerr != nil {
			return prepared{}, cerr
		}
		return prepared{}, fmt.Errorf("wazero: cannot add interruption checks: %w", err)
	}
	if merged, err := mergeData(src); err == nil {
		src = merged
	}
	var start bool
	if moved, ok, err := exportStart(src); err == nil && ok {
		src, start = moved, true
	}
	src, img := datamerge.SplitImage(src)
	return prepared{src: src, img: img, start: start}, nil
}

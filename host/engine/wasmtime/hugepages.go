//go:build cgo

package wasmtime

// #include "shim.h"
import "C"

import (
	"bytes"
	"os"
	"strconv"
)

// The pool's linear memories are backed by transparent huge pages where
// the kernel offers them on request (Linux with transparent_hugepage set
// to "madvise" or "always"). A memory slot that no instance has used yet
// holds no pages: the first instance in it takes a page fault for every
// 4 KiB it touches, first when its data is copied in, then in the guest,
// then when the pool zeroes the slot for the next instance. A Go block
// touches about 3.6 MB, some 900 faults, and on a virtual machine a fault
// costs several microseconds; when 200 steps start at once every one of
// them is in a fresh slot. With huge pages, a 2 MiB-aligned part of the
// memory faults once. Slots that are reused keep their pages either way
// (the pool keeps them resident), so a steady stream of steps is not
// changed. docs/benchmarks.md has the figures.
//
// wasmtime's C API has no setting for it, so the engine finds the pool's
// reservation the way any process finds its mappings: the mapping of at
// least hugePoolMin bytes that appeared while the engine was created.
// Nothing depends on it for correctness; where it cannot be found or the
// kernel refuses, memories use ordinary pages.

// mapping is a range [lo, hi) of the process's address space.
type mapping struct{ lo, hi uint64 }

// mappings lists the process's mappings, or nothing where
// /proc/self/maps cannot be read.
func mappings() []mapping {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	var out []mapping
	for line := range bytes.Lines(b) {
		span, _, _ := bytes.Cut(line, []byte(" "))
		lo, hi, ok := bytes.Cut(span, []byte("-"))
		if !ok {
			continue
		}
		l, err1 := strconv.ParseUint(string(lo), 16, 64)
		h, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 == nil && err2 == nil && h > l {
			out = append(out, mapping{l, h})
		}
	}
	return out
}

// hugePoolMin is the least size of a mapping taken for the pool's memory
// reservation: half of what its memory slots need. Nothing else in the
// process reserves terabytes at once; the pool's tables and instances
// take gigabytes.
func hugePoolMin(p poolSize) uint64 { return uint64(p.memories) * p.maxMemory / 2 }

// adviseHugePages advises huge pages for every mapping of at least min
// bytes that is not among before, and returns those the kernel accepted.
func adviseHugePages(before []mapping, min uint64) []mapping {
	old := make(map[mapping]bool, len(before))
	for _, m := range before {
		old[m] = true
	}
	var advised []mapping
	for _, m := range mappings() {
		if old[m] || m.hi-m.lo < min {
			continue
		}
		if C.bh_advise_huge_pages(C.uintptr_t(m.lo), C.size_t(m.hi-m.lo)) == 0 {
			advised = append(advised, m)
		}
	}
	return advised
}

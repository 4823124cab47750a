package extism

import (
	"encoding/binary"

	"github.com/blockhost/blockhost/abi"
)

// blockStore is the call's memory blocks: one arena addressed by offsets,
// as Extism's kernel memory is. Offset 0 is never a block (it means "none"
// in the ABI); blocks start 8-byte aligned so a plugin reading a block
// eight bytes at a time stays inside the arena.
type blockStore struct {
	arena []byte
	// live maps a block's offset to its length; free holds the capacity of
	// freed blocks for reuse, by offset.
	live  map[uint64]uint64
	caps  map[uint64]uint64
	free  []uint64
	limit uint64
}

const blockAlign = 8

// alloc returns the offset of a new block of n bytes, zeroed, or 0 for an
// empty block, or ok false when the store would pass its limit.
func (s *blockStore) alloc(n uint64) (offset uint64, ok bool) {
	if n == 0 {
		return 0, true
	}
	if s.live == nil {
		s.live, s.caps = map[uint64]uint64{}, map[uint64]uint64{}
		s.arena = make([]byte, blockAlign, 4096)
	}
	capacity := (n + blockAlign - 1) &^ (blockAlign - 1)
	if capacity < n {
		return 0, false
	}
	// First fit among freed blocks: plugins that allocate and free in a
	// loop reuse their memory.
	for i, off := range s.free {
		if s.caps[off] >= n {
			s.free = append(s.free[:i], s.free[i+1:]...)
			s.live[off] = n
			clear(s.arena[off : off+s.caps[off]])
			return off, true
		}
	}
	off := uint64(len(s.arena))
	if off+capacity > s.limit+blockAlign || off+capacity < off {
		return 0, false
	}
	s.arena = append(s.arena, make([]byte, capacity)...)
	s.live[off], s.caps[off] = n, capacity
	return off, true
}

// put stores b in a new block.
func (s *blockStore) put(b []byte) (uint64, bool) {
	off, ok := s.alloc(uint64(len(b)))
	if ok && off != 0 {
		copy(s.arena[off:], b)
	}
	return off, ok
}

// release frees the block at offset; anything else is ignored, as Extism
// ignores it.
func (s *blockStore) release(offset uint64) {
	if _, ok := s.live[offset]; !ok {
		return
	}
	delete(s.live, offset)
	if offset+s.caps[offset] == uint64(len(s.arena)) {
		// The top block gives its space back to the arena.
		s.arena = s.arena[:offset]
		delete(s.caps, offset)
		return
	}
	s.free = append(s.free, offset)
}

// length is the length of the live block at offset, 0 for anything else.
func (s *blockStore) length(offset uint64) uint64 { return s.live[offset] }

// bytes returns the live block at offset (nil, true for offset 0).
func (s *blockStore) bytes(offset uint64) ([]byte, bool) {
	if offset == 0 {
		return nil, true
	}
	n, ok := s.live[offset]
	if !ok {
		return nil, false
	}
	return s.arena[offset : offset+n], true
}

// span returns n bytes of the arena at offset, ok false when they are not
// all inside it.
func (s *blockStore) span(offset, n uint64) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	end := offset + n
	if offset == 0 || end < offset || end > uint64(len(s.arena)) {
		return nil, false
	}
	return s.arena[offset:end], true
}

func (s *blockStore) loadU8(offset uint64) (byte, bool) {
	b, ok := s.span(offset, 1)
	if !ok {
		return 0, false
	}
	return b[0], true
}

func (s *blockStore) loadU64(offset uint64) (uint64, bool) {
	b, ok := s.span(offset, 8)
	if !ok {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b), true
}

func (s *blockStore) storeU8(offset uint64, v byte) bool {
	b, ok := s.span(offset, 1)
	if ok {
		b[0] = v
	}
	return ok
}

func (s *blockStore) storeU64(offset, v uint64) bool {
	b, ok := s.span(offset, 8)
	if ok {
		binary.LittleEndian.PutUint64(b, v)
	}
	return ok
}

// reset drops every block.
func (s *blockStore) reset() {
	if s.live == nil {
		return
	}
	clear(s.live)
	clear(s.caps)
	s.free = s.free[:0]
	s.arena = s.arena[:blockAlign]
}

// overError is the step's error for blocks past the limit.
func (s *blockStore) overError(n uint64) *abi.Error {
	return abi.NewError(abi.CodeQuotaExceeded, abi.ClassPermanent,
		"a memory block of "+itoa(n)+" bytes would take the plugin's memory blocks past their cap of "+itoa(s.limit)+" bytes")
}

//go:build !linux

package wazero

// Without Linux's memory files and page map, every memory is a Go slice
// (memory.go) and every instance copies the image.

type image struct{ bytes []byte }

// memPool hands out no regions.
type memPool struct{ image *image }

func newMemPool(img []byte) *memPool {
	if img == nil {
		return &memPool{}
	}
	return &memPool{image: &image{bytes: img}}
}

func (p *memPool) get(uint64) *region { return nil }
func (p *memPool) put(*region)        {}
func (p *memPool) close()             {}

// region is never used.
type region struct {
	heapMemory
	a *allocator
}

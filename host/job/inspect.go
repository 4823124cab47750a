package job

import (
	"context"

	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
)

// Inspection is what a request would run and under which grants, limits
// and retry policy, found as Resolve finds it — the same loading, pins,
// signatures and override rules — without running anything
// (`blockhost inspect`).
type Inspection struct {
	// Request is the resolved request, as Resolve returns it: its Step
	// holds the grants, limits and arguments, its Retry the retry
	// policy. A zero limit or deadline is the host's or the executor's
	// default.
	Request executor.Request
	// Block is the compiled module; nil for a built-in block.
	Block *host.Block
	// Module is the module file's path, or the built-in block's name.
	Module string
	// Digest is the module's "sha256:hex", of the bytes compiled; Size
	// their length. Both are zero for a built-in block.
	Digest string
	Size   int
	// Engine runs the module; empty for a built-in block.
	Engine string
	// Manifest is the manifest's path, and Pinned its sha256 pin
	// ("sha256:hex"), when the request names a manifest and it pins one.
	Manifest, Pinned string
}

// Inspect resolves r as Resolve does and describes the result. The
// errors are Resolve's.
func (s *Service) Inspect(ctx context.Context, r Request) (*Inspection, error) {
	xr, err := s.Resolve(ctx, r)
	if err != nil {
		return nil, err
	}
	l, err := s.load(ctx, r) // loaded by Resolve: from the cache
	if err != nil {
		return nil, err
	}
	in := &Inspection{Request: xr, Module: l.module, Digest: l.digest, Size: l.size, Engine: l.engine,
		Manifest: l.manifest, Pinned: l.pinned}
	in.Block, _ = l.runner.(*host.Block)
	return in, nil
}

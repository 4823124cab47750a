package engine

// Instance is a live instance as RunConfig.Capture sees it: after every
// entry point returned, before the instance is closed. It is valid only
// during the call.
type Instance interface {
	// Memory returns the bytes of the exported memory named "memory", or
	// nil when there is none. The slice is the instance's own: read it, do
	// not keep it.
	Memory() []byte
	// Global returns the value of the exported global named name as the
	// bits of its WebAssembly value (an i32 or f32 in the low 32 bits), and
	// false when there is no such global.
	Global(name string) (uint64, bool)
}

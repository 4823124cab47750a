package host

// Grants are the capabilities one step may use. Everything is denied by
// default: the zero value grants nothing. Each capability adds its field
// here and an opener (registerOpener) that prepares it for a step.
type Grants struct {
	// Env is the environment variables the guest sees through WASI.
	// Nothing else of the host's environment is visible.
	Env map[string]string
}

//go:build !unix

package diskcache

import "os"

// HoldDir opens dir; without flock(2) it holds nothing, and Prune judges a
// staging directory by its age alone.
func HoldDir(dir string) (*os.File, error) { return os.Open(dir) }

func heldDir(string) bool { return false }

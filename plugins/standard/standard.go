// Package standard imports the standard set of built-in blocks; a program
// that blank-imports it can run every one of them by name.
package standard

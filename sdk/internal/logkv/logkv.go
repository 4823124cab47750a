// Package logkv encodes and decodes the key/value block of the log host
// function (docs/abi.md §4): a sequence of NUL-terminated UTF-8 strings,
// key then value, such as "user\x00ana\x00n\x003\x00".
//
// The encoder cannot produce a block the host rejects: a NUL byte or an
// invalid UTF-8 sequence inside a string is replaced by U+FFFD, so every
// string it writes decodes back as exactly one string. The decoder is the
// host's check, used by the sdk's in-process fake host.
package logkv

import (
	"bytes"
	"errors"
	"unicode/utf8"
)

// Errors returned by Decode; both make the host answer "invalid".
var (
	ErrUnterminated = errors.New("logkv: last string has no terminating NUL")
	ErrOddCount     = errors.New("logkv: odd number of strings: a key has no value")
)

const replacement = "\uFFFD"

// AppendString appends s and its terminating NUL to dst, replacing each NUL
// byte and each byte of an invalid UTF-8 sequence with U+FFFD.
func AppendString(dst []byte, s string) []byte {
	if clean(s) {
		dst = append(dst, s...)
		return append(dst, 0)
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == 0 || (r == utf8.RuneError && size == 1) {
			dst = append(dst, replacement...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, 0)
}

// Clean returns s as AppendString writes it, without the terminating NUL.
func Clean(s string) string {
	if clean(s) {
		return s
	}
	b := AppendString(make([]byte, 0, len(s)+8), s)
	return string(b[:len(b)-1])
}

func clean(s string) bool {
	return utf8.ValidString(s) && !containsNUL(s)
}

func containsNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// Decode returns the strings of a key/value block, keys at even indexes
// and their values after them. An empty block holds no strings. Decode
// does not check UTF-8: docs/abi.md makes only the framing invalid.
func Decode(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != 0 {
		return nil, ErrUnterminated
	}
	parts := bytes.Split(b[:len(b)-1], []byte{0})
	if len(parts)%2 != 0 {
		return nil, ErrOddCount
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out, nil
}

package manifest

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// MaxMemory is the largest memory limit a manifest may set: 4GiB, the whole
// 32-bit WebAssembly address space (65536 pages of 64KiB).
const MaxMemory uint64 = 4 << 30

// sizeUnits maps each unit ParseSize accepts to its multiplier. Units are
// case-sensitive so that "Mb", which people read as megabits, is refused
// rather than guessed at.
var sizeUnits = map[string]uint64{
	"":    1,
	"B":   1,
	"KB":  1000,
	"MB":  1000 * 1000,
	"GB":  1000 * 1000 * 1000,
	"KiB": 1 << 10,
	"MiB": 1 << 20,
	"GiB": 1 << 30,
}

// ParseSize parses a byte size: a whole number of bytes, optionally
// followed by a unit, such as "65536", "64KiB" or "1 MB". The units are B,
// KB, MB and GB (powers of 1000) and KiB, MiB and GiB (powers of 1024);
// spaces are allowed between the number and the unit only.
//
// ParseSize checks syntax and that the result fits in a uint64; it accepts
// "0". Bounds, such as a limit being positive or at most MaxMemory, are the
// caller's to check. Errors are *SizeError.
func ParseSize(s string) (uint64, error) {
	if s == "" {
		return 0, &SizeError{Size: s, Reason: "empty"}
	}
	end := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if end == -1 {
		end = len(s)
	}
	if end == 0 {
		return 0, &SizeError{Size: s, Reason: "must start with a whole number of bytes"}
	}
	digits, rest := s[:end], s[end:]
	if rest != "" && (rest[0] == '.' || rest[0] == ',') {
		return 0, &SizeError{Size: s, Reason: "must be a whole number"}
	}
	unit := strings.TrimLeft(rest, " ")
	mult, ok := sizeUnits[unit]
	if !ok || (unit == "" && rest != "") {
		if unit == "" {
			unit = rest // only spaces: show them rather than ""
		}
		return 0, &SizeError{Size: s, Reason: "unknown unit " + strconv.Quote(unit)}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, &SizeError{Size: s, Reason: "out of range"}
		}
		// Unreachable: digits holds only ASCII digits and is not empty.
		return 0, &SizeError{Size: s, Reason: err.Error()}
	}
	if n > math.MaxUint64/mult {
		return 0, &SizeError{Size: s, Reason: "out of range"}
	}
	return n * mult, nil
}

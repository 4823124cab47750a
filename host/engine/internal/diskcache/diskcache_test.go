package diskcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestDecode: Decode, on an entry in memory, and check, on an entry in a
// file, accept the same entries and refuse the same ones.
func TestDecode(t *testing.T) {
	good := Encode("k", []byte("payload"))
	if p, err := Decode("k", good); err != nil || string(p) != "payload" {
		t.Fatalf("good entry: %q, %v", p, err)
	}
	if n, tail, err := checkBytes(t, "k", good, 3); err != nil || n != 7 || string(tail) != "oad" {
		t.Fatalf("good entry checked: %d, %q, %v", n, tail, err)
	}
	flipped := bytes.Clone(good)
	flipped[3] ^= 1
	for name, data := range map[string][]byte{
		"otherKey":     Encode("k2", []byte("payload")),
		"extraByte":    append(bytes.Clone(good), 'x'),
		"shortPayload": good[:len(good)-1],
		"flipped":      flipped,
		"empty":        nil,
		"noHeader":     seal([]byte("k")),
		"noKeyLine":    seal([]byte("length 7\n")),
		"badLength":    seal([]byte("payload\nk\nlength x\n")),
		"wrongLength":  seal([]byte("payload\nk\nlength 8\n")),
		"paddedLength": seal([]byte("payload\nk\nlength 07\n")),
		"noNewline":    seal([]byte("payload\nk\nlength 7")),
	} {
		if _, err := Decode("k", data); !errors.Is(err, errBad) {
			t.Errorf("%s: %v, want a bad entry", name, err)
		}
		if _, _, err := checkBytes(t, "k", data, 3); !errors.Is(err, errBad) {
			t.Errorf("%s checked: %v, want a bad entry", name, err)
		}
	}
}

// checkBytes runs check on data written to a file.
func checkBytes(t *testing.T, key string, data []byte, tail int) (int64, []byte, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entry")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return check(f, int64(len(data)), key, tail)
}

// seal appends the checksum to body, making a malformed entry that only
// the header checks can refuse.
func seal(body []byte) []byte {
	return binary.LittleEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
}

// FuzzDecode: no input makes the decoder panic, and whatever it accepts
// round-trips.
func FuzzDecode(f *testing.F) {
	f.Add(Encode("k", []byte("payload")))
	f.Add(seal([]byte("\nk\nlength 0\n")))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode("k", data)
		if err == nil && !bytes.Equal(Encode("k", p), data) {
			t.Fatalf("accepted an entry that does not round-trip: %q", data)
		}
		n, tail, cerr := checkBytes(t, "k", data, 4)
		if (err == nil) != (cerr == nil) || err == nil && (n != int64(len(p)) || !bytes.HasSuffix(p, tail) || len(tail) != min(4, len(p))) {
			t.Fatalf("Decode (%v) and check (%d, %q, %v) disagree on %q", err, n, tail, cerr, data)
		}
	})
}

func newCache(t *testing.T, dir string) (*Cache, *bytes.Buffer) {
	var logs bytes.Buffer
	return Open(hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}), dir, "engine 1"), &logs
}

func TestCache_storeLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, logs := newCache(t, dir)
	wasm := sha256.Sum256([]byte("module bytes"))
	if _, ok := c.Load(wasm, nil); ok || c.Misses.Load() != 1 {
		t.Fatal("an empty cache hit")
	}
	c.Store(wasm, []byte("code"))
	if p, ok := c.Load(wasm, nil); !ok || string(p) != "code" {
		t.Fatalf("load after store: %q, %v", p, ok)
	}
	e, ok := c.Check(wasm, 2)
	if !ok {
		t.Fatal("check after store: a miss")
	}
	p, err := io.ReadAll(e.Payload())
	info, serr := os.Stat(c.Path(c.Key(wasm)))
	if err != nil || string(p) != "code" || string(e.Tail()) != "de" || serr != nil || !os.SameFile(info, e.Info()) {
		t.Errorf("checked entry: payload %q (%v), tail %q, file %v (%v)", p, err, e.Tail(), e.Info(), serr)
	}
	e.Close()
	if _, ok := c.Load(sha256.Sum256([]byte("other bytes")), nil); ok {
		t.Fatal("another module's bytes hit")
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v (%v), want 0700", info.Mode().Perm(), err)
	}
	if logs.Len() != 0 {
		t.Errorf("warnings: %s", logs.String())
	}
}

// TestCache_rejectOnce: a refused entry is logged once and replaced by the
// next Store.
func TestCache_rejectOnce(t *testing.T) {
	c, logs := newCache(t, t.TempDir())
	wasm := sha256.Sum256([]byte("module bytes"))
	c.Store(wasm, []byte("code"))
	path := c.Path(c.Key(wasm))
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Check(wasm, 0); ok {
		t.Fatal("garbage hit")
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || c.Rejected.Load() != 1 {
		t.Fatalf("%d warnings, %d rejected: %s", n, c.Rejected.Load(), logs.String())
	}
	c.Store(wasm, []byte("code"))
	if p, ok := c.Load(wasm, nil); !ok || string(p) != "code" {
		t.Fatalf("after the repair: %q, %v", p, ok)
	}
}

// TestCache_disableOnce: an unusable directory warns once, however often
// it is used.
func TestCache_disableOnce(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, logs := newCache(t, file)
	for range 3 {
		c.Store(Sum{1}, []byte("code"))
		if _, ok := c.Load(Sum{1}, nil); ok {
			t.Fatal("hit in an unusable directory")
		}
		c.Disable(errors.New("again"))
	}
	if c.On() || strings.Count(logs.String(), "\n") != 1 {
		t.Fatalf("on %v, warnings:\n%s", c.On(), logs.String())
	}
}

// TestBuffer: a buffer holds n writable bytes, zeroed, whatever the
// rounding to huge pages.
func TestBuffer(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 3<<20 + 5} {
		b, release := Buffer(n)
		if len(b) != n || bytes.IndexFunc(b, func(r rune) bool { return r != 0 }) >= 0 {
			t.Errorf("Buffer(%d): %d bytes, not all zero", n, len(b))
		}
		for i := range b {
			b[i] = byte(i)
		}
		release()
	}
}

package diskcache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestDecode(t *testing.T) {
	good := Encode("k", []byte("payload"))
	if p, err := Decode("k", good); err != nil || string(p) != "payload" {
		t.Fatalf("good entry: %q, %v", p, err)
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
		"badLength":    seal([]byte("k\nlength x\npayload")),
		"wrongLength":  seal([]byte("k\nlength 8\npayload")),
	} {
		if _, err := Decode("k", data); !errors.Is(err, errBad) {
			t.Errorf("%s: %v, want a bad entry", name, err)
		}
	}
}

// seal appends the checksum to body, making a malformed entry that only
// the header checks can refuse.
func seal(body []byte) []byte {
	sum := sha256.Sum256(body)
	return append(bytes.Clone(body), sum[:]...)
}

// FuzzDecode: no input makes the decoder panic, and whatever it accepts
// round-trips.
func FuzzDecode(f *testing.F) {
	f.Add(Encode("k", []byte("payload")))
	f.Add([]byte("k\nlength 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Decode("k", data)
		if err == nil && !bytes.Equal(Encode("k", p), data) {
			t.Fatalf("accepted an entry that does not round-trip: %q", data)
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
	wasm := []byte("module bytes")
	if _, ok := c.Load(wasm); ok || c.Misses.Load() != 1 {
		t.Fatal("an empty cache hit")
	}
	c.Store(wasm, []byte("code"))
	if p, ok := c.Load(wasm); !ok || string(p) != "code" {
		t.Fatalf("load after store: %q, %v", p, ok)
	}
	if _, ok := c.Load([]byte("other bytes")); ok {
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
	wasm := []byte("module bytes")
	c.Store(wasm, []byte("code"))
	path := c.Path(c.Key(wasm))
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Load(wasm); ok {
		t.Fatal("garbage hit")
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || c.Rejected.Load() != 1 {
		t.Fatalf("%d warnings, %d rejected: %s", n, c.Rejected.Load(), logs.String())
	}
	c.Store(wasm, []byte("code"))
	if p, ok := c.Load(wasm); !ok || string(p) != "code" {
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
		c.Store([]byte("m"), []byte("code"))
		if _, ok := c.Load([]byte("m")); ok {
			t.Fatal("hit in an unusable directory")
		}
		c.Disable(errors.New("again"))
	}
	if c.On() || strings.Count(logs.String(), "\n") != 1 {
		t.Fatalf("on %v, warnings:\n%s", c.On(), logs.String())
	}
}

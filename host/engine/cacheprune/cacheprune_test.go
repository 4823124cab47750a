package cacheprune_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/engine"
	"github.com/blockhost/blockhost/host/engine/cacheprune"
	"github.com/blockhost/blockhost/host/engine/internal/diskcache"
	"github.com/blockhost/blockhost/host/engine/snapshot"
	_ "github.com/blockhost/blockhost/host/engine/wasmtime"
	_ "github.com/blockhost/blockhost/host/engine/wazero"
	"github.com/blockhost/blockhost/internal/testwasm"
)

// TestPrune: in a cache directory that engines of this build use while
// Prune runs, Prune removes stale entries, other versions' directories
// and old staging leftovers, reports them and the bytes freed, and keeps
// every entry an engine uses, fresh staging files, staging directories a
// live engine holds, and anything that is not the engines'.
func TestPrune(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	wasm := testwasm.WAT(t, filepath.Join(testwasm.ModuleRoot(t), "host", "testdata", "trap.wat"))
	uses := engine.CacheUses()
	var inUse []string
	for _, name := range engine.Names() {
		f, _ := engine.Lookup(name)
		e, err := f(ctx, engine.Config{CacheDir: root})
		if err != nil {
			t.Logf("engine %s: %v", name, err)
			continue
		}
		// The engine stays open while Prune runs: its staging directory,
		// if it has one, is held.
		t.Cleanup(func() { e.Close(ctx) })
		if _, err := e.Compile(ctx, wasm); err != nil {
			t.Fatal(err)
		}
		entries, _ := filepath.Glob(filepath.Join(root, uses[name].Dir, "*.entry"))
		if len(entries) != 1 {
			t.Fatalf("engine %s wrote %d entries, want 1", name, len(entries))
		}
		inUse = append(inUse, entries[0])
		// Another cache of the engine's (the wazero engine's prepared
		// modules) holds an entry in use too.
		for _, also := range uses[name].Also {
			more, _ := filepath.Glob(filepath.Join(root, also.Dir, "*.entry"))
			if len(more) != 1 {
				t.Fatalf("engine %s wrote %d entries in %s, want 1", name, len(more), also.Dir)
			}
			inUse = append(inUse, more[0])
		}
	}
	wz := uses["wazero"]
	wzDir := filepath.Join(root, wz.Dir)
	sum := sha256.Sum256([]byte("another module"))
	write := func(path string, data []byte, age time.Duration) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-age)
		if err := os.Chtimes(path, at, at); err != nil {
			t.Fatal(err)
		}
		return path
	}
	entryAt := func(dir, key string) string {
		sum := sha256.Sum256([]byte(key))
		return filepath.Join(dir, hex.EncodeToString(sum[:])+diskcache.Ext)
	}
	// An entry of this build's key for another module is in use too.
	other := diskcache.Open(nil, wzDir, wz.Key)
	other.Store(sum, []byte("payload"))
	inUse = append(inUse, other.Path(other.Key(sum)))
	// A snapshot entry of this build.
	snapKeep := snapshot.CacheKeep("wazero", wz.Version)
	snapKey := strings.TrimPrefix(snapKeep.KeyPrefix, diskcache.Format+"; ") + `"block"`
	snap := diskcache.Open(nil, filepath.Join(root, snapKeep.Dir), snapKey)
	snap.Store(sum, []byte("rewritten"))
	inUse = append(inUse, snap.Path(snap.Key(sum)))

	oldFormat := "blockhost-compile-cache 2; " + wz.Key + "; module sha256:00"
	otherConfig := diskcache.Format + "; " + wz.Key + "-other-setting; module sha256:00"
	stale := []string{
		write(entryAt(wzDir, oldFormat), diskcache.Encode(oldFormat, []byte("old format")), 0),
		write(entryAt(wzDir, otherConfig), diskcache.Encode(otherConfig, []byte("other configuration")), 0),
		write(filepath.Join(wzDir, "0000.entry"), diskcache.Encode(diskcache.Format+"; "+wz.Key+"; module sha256:11", []byte("misnamed")), 0),
		write(filepath.Join(wzDir, "cut.entry"), []byte("no trailer"), 0),
		write(filepath.Join(wzDir, "old.cwasm"), []byte("before entries were checked"), 0),
		// Formats before 3 put the key first.
		write(filepath.Join(wzDir, "headerfirst.entry"), []byte("blockhost-compile-cache 2; "+wz.Key+"; module sha256:22\npayload\x00\x01"), 0),
		// wazero's own cache, which blockhost used before it checked entries.
		write(filepath.Join(root, "wazero-v1.0.0-arch-os", strings.Repeat("ab", 32)), make([]byte, 100), 0),
		write(filepath.Join(wzDir, ".tmp-123"), make([]byte, 1000), 2*time.Hour),
		write(filepath.Join(wzDir, ".staging-left", "v", "x"), make([]byte, 500), 2*time.Hour),
		write(filepath.Join(root, wz.Prefix+"v0.0.1-arch-os", "a.entry"), make([]byte, 300), 0),
		write(filepath.Join(root, snapshot.CacheDirPrefix+"wazero-v0.0.1-arch-os", "b.entry"), make([]byte, 200), 0),
		write(filepath.Join(root, wz.Also[0].Prefix+"v0.0.1-arch-os", "c.entry"), make([]byte, 100), 0),
	}
	// The staging directory's own time, which its file's did not set.
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(wzDir, ".staging-left"), old, old)
	kept := append(slices.Clone(inUse),
		write(filepath.Join(wzDir, ".tmp-456"), make([]byte, 10), 0), // being written now
		write(filepath.Join(wzDir, "README"), []byte("not ours"), 0),
		write(filepath.Join(root, "other-tool", "data.entry"), []byte("not ours"), 0),
		write(filepath.Join(root, "wazero-v1.0.0-arch-os", "notes"), []byte("not wazero's"), 0),
	)
	// The wazero engine's staging directory, which it holds.
	var held []string
	staging, _ := filepath.Glob(filepath.Join(wzDir, ".staging-*"))
	for _, h := range staging {
		if filepath.Base(h) != ".staging-left" {
			held = append(held, h)
		}
	}
	kept = append(kept, held...)

	dry, err := cacheprune.Prune(root, cacheprune.NewConfig().WithDryRun(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dry run removed %s", p)
		}
	}
	rep, err := cacheprune.Prune(root, cacheprune.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	if len(dry.Removed) != len(rep.Removed)-3 || dry.Bytes != rep.Bytes {
		// The dry run lists the other versions' directories' files, not
		// the directories, which only become empty.
		t.Errorf("dry run listed %d (%d bytes), the prune removed %d (%d bytes)", len(dry.Removed), dry.Bytes, len(rep.Removed), rep.Bytes)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	var sumBytes int64
	removed := map[string]bool{}
	for _, r := range rep.Removed {
		sumBytes += r.Bytes
		removed[r.Path] = true
		if r.Reason == "" {
			t.Errorf("%s removed without a reason", r.Path)
		}
	}
	if sumBytes != rep.Bytes || rep.Bytes < 2000 {
		t.Errorf("report says %d bytes freed, its removals %d", rep.Bytes, sumBytes)
	}
	for _, dir := range []string{wz.Prefix + "v0.0.1-arch-os", snapshot.CacheDirPrefix + "wazero-v0.0.1-arch-os", wz.Also[0].Prefix + "v0.0.1-arch-os"} {
		if !removed[filepath.Join(root, dir)] {
			t.Errorf("the emptied directory %s is not reported", dir)
		}
	}
	reasons := map[string]string{}
	for _, r := range rep.Removed {
		reasons[filepath.Base(r.Path)] = r.Reason
	}
	if reasons["headerfirst.entry"] != reasons[filepath.Base(stale[0])] || reasons["cut.entry"] == reasons["headerfirst.entry"] {
		t.Errorf("an entry of an older format is reported as %q, a damaged one as %q", reasons["headerfirst.entry"], reasons["cut.entry"])
	}
	if !removed[filepath.Join(wzDir, ".staging-left")] {
		t.Errorf("the staging directory left is not reported: %v", rep.Removed)
	}

	// With no minimum age, only the staging file goes: the staging
	// directories the open engines hold stay, however young.
	rep, err = cacheprune.Prune(root, cacheprune.NewConfig().WithMinAge(0))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Removed {
		if filepath.Base(r.Path) != ".tmp-456" {
			t.Errorf("second prune with engines open removed %s (%s)", r.Path, r.Reason)
		}
	}
	for _, h := range held {
		if _, err := os.Stat(h); err != nil {
			t.Errorf("the held staging directory %s was removed: %v", h, err)
		}
	}
	if len(held) != 1 {
		t.Errorf("staging directories %v: want the wazero engine's", staging)
	}
}

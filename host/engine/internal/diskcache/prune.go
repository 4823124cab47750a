package diskcache

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Keep is a directory of entries that a cache of this binary uses, under
// a cache root: the entries there whose key starts with KeyPrefix, under
// the name Path gives that key, are in use.
type Keep struct {
	// Dir is the directory's name in the root.
	Dir string
	// KeyPrefix starts every key the cache writes: Format, the engine key
	// and whatever else comes before the module's digest.
	KeyPrefix string
}

// Removal is one file or directory Prune removed, or would remove.
type Removal struct {
	Path string
	// Bytes is what it held: a directory's files together.
	Bytes int64
	// Reason says why it was not in use.
	Reason string
}

// Reasons a Removal gives.
const (
	ReasonStale     = "an entry of another format, engine version or configuration"
	ReasonForeign   = "an entry whose name is not its key's (another tool's or misplaced)"
	ReasonUnread    = "an entry whose key cannot be read (damaged or truncated)"
	ReasonOtherDir  = "a directory that no engine of this binary uses"
	ReasonStaging   = "a staging file left by a process that stopped"
	ReasonStagedDir = "a staging directory left by a process that stopped"
	ReasonLegacy    = "a file of wazero's own cache, which blockhost no longer uses"
)

// Layout says which directories under a cache root are blockhost's, and
// which of them the caches of this binary use.
type Layout struct {
	// Owned begins the names of the directories of entries, of every
	// version.
	Owned []string
	// Keep are the directories of entries this binary uses.
	Keep []Keep
	// Legacy begins the names of directories of wazero's own compilation
	// cache, which blockhost used before it checked entries itself: their
	// files, named by 64 hexadecimal digits, are never used any more.
	Legacy []string
}

// Prune removes, under root, what no cache of this binary would use: in
// each directory of keep, the entries of other keys (older formats, other
// engine versions or configurations) or unreadable ones; in any other
// directory whose name starts with one of owned, every entry, and the
// directory itself once empty; and, in both, staging files and
// directories (.tmp-*, .probe-*, .staging-*) older than minAge, left by a
// process that stopped. Nothing else is touched: not a file or directory of
// another name, not an entry a directory of keep uses, not a staging
// directory that a live process holds (HoldDir), whatever its age.
//
// Entries are written by rename and read whole or refused, so removing one
// under a process that uses the same root is safe: that process compiles
// the module again. A staging file younger than minAge may be one a
// process is writing now, and is left alone. With dryRun nothing is
// removed, and the result lists what would be.
func Prune(root string, layout Layout, minAge time.Duration, dryRun bool) ([]Removal, error) {
	des, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	kept := map[string]string{}
	for _, k := range layout.Keep {
		kept[k.Dir] = k.KeyPrefix
	}
	p := &pruner{minAge: minAge, dryRun: dryRun, now: time.Now()}
	for _, de := range des {
		name := de.Name()
		legacy := slicesHasPrefix(layout.Legacy, name)
		if !de.IsDir() || !legacy && !slicesHasPrefix(layout.Owned, name) {
			continue
		}
		prefix, inUse := kept[name]
		dir := filepath.Join(root, name)
		left, err := p.dir(dir, prefix, inUse, legacy)
		if err != nil {
			p.errs = append(p.errs, err)
			continue
		}
		if !inUse && left == 0 {
			if dryRun {
				continue
			}
			// Empty now: a process that makes it again is not hurt.
			if err := os.Remove(dir); err == nil {
				p.out = append(p.out, Removal{Path: dir, Reason: ReasonOtherDir})
			}
		}
	}
	sort.Slice(p.out, func(i, j int) bool { return p.out[i].Path < p.out[j].Path })
	return p.out, errors.Join(p.errs...)
}

func slicesHasPrefix(prefixes []string, name string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

type pruner struct {
	minAge time.Duration
	dryRun bool
	now    time.Time
	out    []Removal
	errs   []error
}

// dir prunes one directory of entries and returns how many of its
// children are left.
func (p *pruner) dir(dir, keyPrefix string, inUse, legacy bool) (left int, err error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	for _, de := range des {
		path := filepath.Join(dir, de.Name())
		info, err := os.Lstat(path)
		if err != nil {
			continue // gone meanwhile
		}
		reason := p.reason(path, de.Name(), info, keyPrefix, inUse)
		if legacy {
			reason = ""
			if info.Mode().IsRegular() && isHexName(de.Name()) {
				reason = ReasonLegacy
			}
		}
		if reason == "" {
			left++
			continue
		}
		size := info.Size()
		if info.IsDir() {
			size = dirSize(path)
		}
		if !p.dryRun {
			if info.IsDir() {
				err = os.RemoveAll(path)
			} else {
				err = os.Remove(path)
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				p.errs = append(p.errs, err)
				left++
				continue
			}
		}
		p.out = append(p.out, Removal{Path: path, Bytes: size, Reason: reason})
	}
	return left, nil
}

// reason says why path is not in use, or "" to keep it.
func (p *pruner) reason(path, name string, info fs.FileInfo, keyPrefix string, inUse bool) string {
	old := p.now.Sub(info.ModTime()) >= p.minAge
	switch {
	case strings.HasPrefix(name, ".staging-") && info.IsDir():
		if old && !heldDir(path) {
			return ReasonStagedDir
		}
	case strings.HasPrefix(name, ".tmp-") || strings.HasPrefix(name, ".probe-"):
		if old && info.Mode().IsRegular() {
			return ReasonStaging
		}
	case strings.HasSuffix(name, ".cwasm") && info.Mode().IsRegular():
		// wasmtime's serialized modules, as blockhost kept them before
		// entries were checked.
		return ReasonStale
	case strings.HasSuffix(name, Ext) && info.Mode().IsRegular():
		if !inUse {
			return ReasonOtherDir
		}
		key, ok := readKey(path)
		switch {
		case !ok:
			return ReasonUnread
		case !strings.HasPrefix(key, keyPrefix):
			return ReasonStale
		case name != keyName(key):
			return ReasonForeign
		}
	}
	return ""
}

// isHexName reports whether name is 64 hexadecimal digits, as wazero
// names its cache's files.
func isHexName(name string) bool {
	return len(name) == 64 && strings.Trim(name, "0123456789abcdef") == ""
}

// keyName is the file name of the entry with the given key (Cache.Path).
func keyName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:]) + Ext
}

// readKey reads an entry's key from its trailer, without checking the
// entry: a key line a directory of keep would not write, or none, marks
// an entry no cache uses.
func readKey(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", false
	}
	n := min(info.Size(), 4096)
	b := make([]byte, n)
	if _, err := f.ReadAt(b, info.Size()-n); err != nil || n < sumLen {
		return "", false
	}
	// From the end: "\n" key "\n" "length N" "\n" and the checksum.
	rest, ok := bytes.CutSuffix(b[:n-sumLen], []byte("\n"))
	i := bytes.LastIndexByte(rest, '\n')
	if ok && i >= 0 {
		rest = rest[:i]
		if j := bytes.LastIndexByte(rest, '\n'); j >= 0 && bytes.HasPrefix(rest[j+1:], []byte(formatName)) {
			return string(rest[j+1:]), true
		}
	}
	// Formats before 3 put the key first, on the entry's first line.
	head := make([]byte, min(info.Size(), 4096))
	if _, err := f.ReadAt(head, 0); err != nil {
		return "", false
	}
	line, _, ok := bytes.Cut(head, []byte("\n"))
	if !ok || !bytes.HasPrefix(line, []byte(formatName)) {
		return "", false
	}
	return string(line), true
}

// formatName begins Format, and the key line of every entry of every
// format.
const formatName = "blockhost-compile-cache "

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

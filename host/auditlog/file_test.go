package auditlog

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readRecords returns the records of one file, failing on a line that is
// not one whole record.
func readRecords(t *testing.T, path string) []Record {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: a line that is not a whole record: %q: %v", path, sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// TestFile_rotates: records go to PATH until the next would pass the
// maximum; then PATH becomes PATH.1, PATH.1 PATH.2, and the oldest past
// keep is removed. No record is split, none is lost within keep, and the
// files hold them in order.
func TestFile_rotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	const maxSize, keep = 600, 3
	f, err := OpenFile(path, maxSize, keep)
	if err != nil {
		t.Fatal(err)
	}
	l := New(f)
	const n = 40
	for i := range n {
		l.Write(&Record{Event: EventStepStart, StepID: strings.Repeat("x", i%7) + string(rune('a'+i%26)), Block: "b", Bytes: int64(i + 1)})
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var all []Record
	for _, p := range []string{path + ".3", path + ".2", path + ".1", path} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if st.Size() > maxSize {
			t.Errorf("%s is %d bytes, over the maximum %d", p, st.Size(), maxSize)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, st.Mode().Perm())
		}
		all = append(all, readRecords(t, p)...)
	}
	if _, err := os.Stat(path + ".4"); !os.IsNotExist(err) {
		t.Errorf("a file past keep: %v", err)
	}
	if len(all) == 0 || len(all) >= n {
		t.Fatalf("%d records in the kept files, want some of the %d and not all (the oldest rotated out)", len(all), n)
	}
	// The kept records are the last ones, in order.
	first := n - len(all) + 1
	for i, r := range all {
		if r.Bytes != int64(first+i) {
			t.Fatalf("record %d of the kept files is number %d, want %d", i, r.Bytes, first+i)
		}
	}
}

// TestFile_noMaximum: without a maximum the file only grows, appended to
// across openings, and is never rotated.
func TestFile_noMaximum(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for range 2 {
		f, err := OpenFile(path, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		l := New(f)
		for i := range 50 {
			l.Write(&Record{Event: EventStepEnd, Bytes: int64(i + 1)})
		}
		f.Close()
	}
	if got := len(readRecords(t, path)); got != 100 {
		t.Errorf("%d records, want 100", got)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Errorf("rotated without a maximum: %v", err)
	}
}

// TestFile_rotationFails: when the file cannot be renamed, records go on
// into the file in hand and the error is reported.
func TestFile_rotationFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := OpenFile(path, 200, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// PATH.1 is a non-empty directory: renaming PATH over it fails.
	if err := os.MkdirAll(filepath.Join(path+".1", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	l := New(f)
	for i := range 10 {
		l.Write(&Record{Event: EventStepStart, Bytes: int64(i + 1)})
	}
	if l.Err() == nil || !strings.Contains(l.Err().Error(), "rotation") {
		t.Errorf("error %v, want the rotation's", l.Err())
	}
	if got := len(readRecords(t, path)); got != 10 {
		t.Errorf("%d records in the file in hand, want all 10", got)
	}
}

func TestOpenFile_invalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, err := OpenFile(path, -1, 1); err == nil {
		t.Error("a negative maximum was accepted")
	}
	if _, err := OpenFile(path, 100, 0); err == nil {
		t.Error("a maximum with nothing kept was accepted")
	}
}

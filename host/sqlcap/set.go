package sqlcap

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Set is the databases granted to a step, by name. Its databases come from
// one process-wide cache of pools, one per distinct grant (Pool), so that
// every step given the same grant — by one manifest, or by the flags of
// one runtime — shares one bounded pool. A Set is immutable and safe for
// concurrent use.
type Set struct {
	grants map[string]Grant
	names  []string
}

// NewSet validates grants (each valid, names unique) and returns them as a
// Set. It opens and connects to nothing; the first statement on a
// database opens its pool.
func NewSet(grants []Grant) (*Set, error) {
	if err := ValidateGrants(grants); err != nil {
		return nil, err
	}
	s := &Set{grants: make(map[string]Grant, len(grants))}
	for _, g := range grants {
		s.grants[g.Name] = g.WithDefaults()
		s.names = append(s.names, g.Name)
	}
	slices.Sort(s.names)
	return s, nil
}

// Get returns the pool of the database granted under name, or an *Error
// of kind ErrDenied naming the databases that are granted.
func (s *Set) Get(op, name string) (*DB, error) {
	if s != nil {
		if g, ok := s.grants[name]; ok {
			db, err := Pool(g)
			if err != nil {
				return nil, &Error{Kind: ErrFailed, Op: op, Database: name, Reason: "the database cannot be opened", Err: err}
			}
			return db, nil
		}
	}
	reason := "no database is granted to the step (--allow-sql, or the manifest's sql section)"
	if s != nil && len(s.names) > 0 {
		reason = fmt.Sprintf("not a database granted to the step; granted: %s", strings.Join(s.names, ", "))
	}
	return nil, &Error{Kind: ErrDenied, Op: op, Database: quoteName(name), Reason: reason}
}

// Names returns the granted databases' names, sorted.
func (s *Set) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Clone(s.names)
}

// Grants returns the grants, defaults filled in, in the order of Names.
func (s *Set) Grants() []Grant {
	if s == nil {
		return nil
	}
	out := make([]Grant, len(s.names))
	for i, n := range s.names {
		out[i] = s.grants[n]
	}
	return out
}

// pools is the process-wide cache of pools, one per distinct grant.
var pools = struct {
	sync.Mutex
	m map[Grant]*DB
}{m: map[Grant]*DB{}}

// Pool returns the pool of grant g, opening it the first time any step
// uses g. Pools live until ClosePools; a process has one per distinct
// grant its operators wrote, so there are few.
func Pool(g Grant) (*DB, error) {
	g = g.WithDefaults()
	pools.Lock()
	defer pools.Unlock()
	if db, ok := pools.m[g]; ok {
		return db, nil
	}
	db, err := Open(g, hclog.NewNullLogger())
	if err != nil {
		return nil, err
	}
	pools.m[g] = db
	return db, nil
}

// ClosePools closes every pool Pool opened. Statements running finish
// first; a later Pool opens a new one.
func ClosePools() {
	pools.Lock()
	defer pools.Unlock()
	for g, db := range pools.m {
		db.Close()
		delete(pools.m, g)
	}
}

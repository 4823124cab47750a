package sqlcap

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Set is the databases granted to a runtime, by name: each grant opened
// once as a DB whose pool every step shares. A step's SQL grant is a Set;
// the steps of one runtime share one. It is safe for concurrent use.
type Set struct {
	dbs   map[string]*DB
	names []string
}

// OpenSet validates grants (each valid, names unique) and opens a DB for
// each. It connects to nothing; the first statement on a database does.
func OpenSet(grants []Grant, log hclog.Logger) (*Set, error) {
	if err := ValidateGrants(grants); err != nil {
		return nil, err
	}
	s := &Set{dbs: make(map[string]*DB, len(grants))}
	for _, g := range grants {
		db, err := Open(g, log)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.dbs[g.Name] = db
		s.names = append(s.names, g.Name)
	}
	slices.Sort(s.names)
	return s, nil
}

// Get returns the database granted under name, or an *Error of kind
// ErrDenied naming the databases that are granted.
func (s *Set) Get(op, name string) (*DB, error) {
	if s != nil {
		if db, ok := s.dbs[name]; ok {
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
		out[i] = s.dbs[n].Grant()
	}
	return out
}

// Close closes every database.
func (s *Set) Close() error {
	if s == nil {
		return nil
	}
	var errs []error
	for _, db := range s.dbs {
		errs = append(errs, db.Close())
	}
	return errors.Join(errs...)
}

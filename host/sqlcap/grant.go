package sqlcap

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// Driver names the database engine behind a grant.
type Driver string

// The drivers. DriverSQLite is embedded (modernc.org/sqlite, pure Go, no
// cgo) and the default; DriverPostgres speaks to a PostgreSQL server through
// github.com/jackc/pgx/v5.
const (
	DriverSQLite   Driver = "sqlite"
	DriverPostgres Driver = "postgres"
)

// Mode says whether a grant may change its database.
type Mode string

// The modes. ModeReadOnly, the default, is enforced by the database itself
// (docs/capabilities.md, "What read-only means").
const (
	ModeReadOnly  Mode = "ro"
	ModeReadWrite Mode = "rw"
)

// Defaults for a Grant's zero fields, and the largest values allowed.
const (
	DefaultTimeout  = 5 * time.Second
	DefaultMaxRows  = 1000
	DefaultMaxBytes = 1 << 20
	DefaultMaxConns = 4

	MaxTimeout  = 10 * time.Minute
	MaxMaxRows  = 10_000_000
	MaxMaxBytes = 1 << 30
	MaxMaxConns = 256

	// MaxStatementBytes caps the text of one statement and MaxParameters
	// the parameters it takes.
	MaxStatementBytes = 64 << 10
	MaxParameters     = 1000
)

// Secret holds a value that must never be printed: a DSN with its
// password. Every way fmt, encoding/json and encoding/text have of showing
// it shows "[redacted]"; Reveal returns the value itself, for the one place
// that connects.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return `sqlcap.Secret("` + s.String() + `")` }

// Format keeps every verb (%s, %v, %q, %x, …) from printing the value.
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, s.String()) }

// MarshalText keeps encoding/json and friends from printing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Grant gives a step one database, under a name the block uses. Grants come
// from operators — the manifest's `sql { database "NAME" { … } }` blocks and
// the --allow-sql flag — never from a step's input. A zero field takes the
// default documented next to it.
type Grant struct {
	// Name is how blocks refer to the database, such as "orders": a letter
	// then letters, digits, '_', '-' or '.', at most 64 bytes. Required.
	Name string
	// Driver is DriverSQLite or DriverPostgres. Default DriverSQLite.
	Driver Driver
	// DSN says where the database is. For SQLite: an absolute file path,
	// or ":memory:" for a private in-memory database (one connection; it
	// lives as long as the pool). For PostgreSQL: a URL
	// (postgres://user:password@host:port/db?sslmode=…) or key=value
	// string, as pgx reads them. Exactly one of DSN and DSNEnv is set.
	DSN Secret
	// DSNEnv names an environment variable that holds the DSN, read when
	// the database is opened, so that the secret stays out of manifests
	// and command lines.
	DSNEnv string
	// Mode is ModeReadOnly or ModeReadWrite. Default ModeReadOnly.
	Mode Mode
	// Timeout bounds each statement — waiting for a connection, running,
	// reading the result — on top of the step's deadline. Default
	// DefaultTimeout, at most MaxTimeout.
	Timeout time.Duration
	// MaxRows caps the rows one query returns; one more fails the call
	// with ErrQuota. Default DefaultMaxRows.
	MaxRows int
	// MaxBytes caps the encoded size of one result (its JSON form); more
	// fails the call with ErrQuota. Default DefaultMaxBytes.
	MaxBytes int
	// MaxConns caps the connections the grant's pool holds open, shared by
	// every step. Default DefaultMaxConns; an in-memory SQLite database
	// always has one.
	MaxConns int
}

// WithDefaults returns g with every zero field set to its default.
func (g Grant) WithDefaults() Grant {
	if g.Driver == "" {
		g.Driver = DriverSQLite
	}
	if g.Mode == "" {
		g.Mode = ModeReadOnly
	}
	if g.Timeout == 0 {
		g.Timeout = DefaultTimeout
	}
	if g.MaxRows == 0 {
		g.MaxRows = DefaultMaxRows
	}
	if g.MaxBytes == 0 {
		g.MaxBytes = DefaultMaxBytes
	}
	if g.MaxConns == 0 {
		g.MaxConns = DefaultMaxConns
	}
	if g.Driver == DriverSQLite && g.DSN == memoryDSN {
		g.MaxConns = 1
	}
	return g
}

// ReadOnly reports whether the grant is read-only (the default).
func (g Grant) ReadOnly() bool { return g.Mode != ModeReadWrite }

const memoryDSN = ":memory:"

// Validate checks the grant's fields. It does not read DSNEnv or connect;
// Open does.
func (g Grant) Validate() error {
	if err := ValidName(g.Name); err != nil {
		return err
	}
	fail := func(format string, a ...any) error {
		return &GrantError{Grant: g.Name, Reason: fmt.Sprintf(format, a...)}
	}
	switch g.Driver {
	case "", DriverSQLite, DriverPostgres:
	default:
		return fail("driver %q is not one of sqlite, postgres", string(g.Driver))
	}
	switch g.Mode {
	case "", ModeReadOnly, ModeReadWrite:
	default:
		return fail("mode %q is not ro or rw", string(g.Mode))
	}
	switch {
	case g.DSN == "" && g.DSNEnv == "":
		return fail("no dsn and no dsn_env: one of them says where the database is")
	case g.DSN != "" && g.DSNEnv != "":
		return fail("both dsn and dsn_env are set: give one")
	case g.DSNEnv != "" && !validEnvName(g.DSNEnv):
		return fail("dsn_env %q is not an environment variable name", g.DSNEnv)
	case g.DSN != "":
		if err := validDSN(g.driver(), g.DSN.Reveal()); err != nil {
			return fail("dsn: %s", err)
		}
	}
	for _, f := range []struct {
		name   string
		v, max int64
	}{
		{"max_rows", int64(g.MaxRows), MaxMaxRows},
		{"max_bytes", int64(g.MaxBytes), MaxMaxBytes},
		{"max_conns", int64(g.MaxConns), MaxMaxConns},
	} {
		if f.v < 0 || f.v > f.max {
			return fail("%s %d is out of range (1 to %d, 0 for the default)", f.name, f.v, f.max)
		}
	}
	if g.Timeout < 0 || g.Timeout > MaxTimeout {
		return fail("timeout %s is out of range (up to %s, 0 for the default)", g.Timeout, MaxTimeout)
	}
	return nil
}

func (g Grant) driver() Driver {
	if g.Driver == "" {
		return DriverSQLite
	}
	return g.Driver
}

// dsn returns the grant's DSN, reading DSNEnv if that is how it is given.
func (g Grant) dsn() (string, error) {
	if g.DSNEnv == "" {
		return g.DSN.Reveal(), nil
	}
	v, ok := os.LookupEnv(g.DSNEnv)
	if !ok || v == "" {
		return "", &GrantError{Grant: g.Name, Reason: fmt.Sprintf("environment variable %s (dsn_env) is not set", g.DSNEnv)}
	}
	if err := validDSN(g.driver(), v); err != nil {
		return "", &GrantError{Grant: g.Name, Reason: fmt.Sprintf("dsn from %s: %s", g.DSNEnv, err)}
	}
	return v, nil
}

// validDSN checks what can be checked of a DSN without connecting. Its
// errors never quote the DSN: it may hold a password.
func validDSN(d Driver, dsn string) error {
	if strings.IndexByte(dsn, 0) >= 0 {
		return fmt.Errorf("contains a NUL byte")
	}
	switch d {
	case DriverSQLite:
		if dsn == memoryDSN {
			return nil
		}
		if !filepath.IsAbs(dsn) {
			return fmt.Errorf("a SQLite database is an absolute file path or %s", memoryDSN)
		}
		if strings.ContainsAny(dsn, "?#") {
			// The path becomes a file: URI whose query carries the
			// read-only flags; a '?' or '#' in it would be read as one.
			return fmt.Errorf("a SQLite file path may not contain '?' or '#'")
		}
	case DriverPostgres:
		if _, err := parsePostgres(dsn); err != nil {
			return err
		}
	}
	return nil
}

// Describe returns the DSN without its secrets, for logs, inspect and the
// audit log: a SQLite path as it is, a PostgreSQL DSN as
// postgres://USER@HOST:PORT/DATABASE (no password, no parameters), and for
// dsn_env the variable's name.
func (g Grant) Describe() string {
	if g.DSNEnv != "" {
		return "$" + g.DSNEnv
	}
	return redact(g.driver(), g.DSN.Reveal())
}

func redact(d Driver, dsn string) string {
	if d == DriverSQLite {
		return dsn
	}
	cfg, err := parsePostgres(dsn)
	if err != nil {
		return "postgres://[unparsable]"
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// String describes the grant without secrets, such as
// `orders=postgres:postgres://app@127.0.0.1:5432/orders:ro`.
func (g Grant) String() string {
	g = g.WithDefaults()
	return g.Name + "=" + string(g.Driver) + ":" + g.Describe() + ":" + string(g.Mode)
}

// ValidName checks a database name.
func ValidName(name string) error {
	switch {
	case name == "":
		return &GrantError{Reason: "no database name"}
	case len(name) > 64:
		return &GrantError{Grant: name, Reason: "database name longer than 64 bytes"}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter {
			return &GrantError{Grant: name, Reason: "database name must start with a letter"}
		}
		if !letter && !(c >= '0' && c <= '9') && c != '_' && c != '-' && c != '.' {
			return &GrantError{Grant: name, Reason: fmt.Sprintf("database name has %q; allowed are letters, digits, '_', '-' and '.'", c)}
		}
	}
	return nil
}

func validEnvName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParseSpec parses the command line's NAME=DRIVER:DSN[:ro|rw], such as
// `orders=sqlite:/srv/orders.db` or
// `orders=postgres:postgres://app@db:5432/orders:rw`. A trailing ":ro" or
// ":rw" is always the mode. A DSN written env:VAR is read from the
// environment variable VAR when the database opens (Grant.DSNEnv), which
// keeps a password off the command line. A relative SQLite path is made
// absolute against the working directory. Errors never quote the DSN.
func ParseSpec(spec string) (Grant, error) {
	name, rest, ok := strings.Cut(spec, "=")
	if !ok {
		return Grant{}, &GrantError{Reason: "want NAME=DRIVER:DSN[:ro|rw], no '=' found"}
	}
	g := Grant{Name: name, Mode: ModeReadOnly}
	if err := ValidName(name); err != nil {
		return Grant{}, err
	}
	driver, dsn, ok := strings.Cut(rest, ":")
	if !ok {
		return Grant{}, &GrantError{Grant: name, Reason: "want NAME=DRIVER:DSN[:ro|rw], no ':' after the driver"}
	}
	g.Driver = Driver(driver)
	switch {
	case strings.HasSuffix(dsn, ":ro"):
		dsn = strings.TrimSuffix(dsn, ":ro")
	case strings.HasSuffix(dsn, ":rw"):
		dsn, g.Mode = strings.TrimSuffix(dsn, ":rw"), ModeReadWrite
	}
	switch {
	case dsn == "":
		return Grant{}, &GrantError{Grant: name, Reason: "no DSN after the driver"}
	case strings.HasPrefix(dsn, "env:"):
		g.DSNEnv = strings.TrimPrefix(dsn, "env:")
	case g.Driver == DriverSQLite && dsn != memoryDSN && !filepath.IsAbs(dsn):
		abs, err := filepath.Abs(dsn)
		if err != nil {
			return Grant{}, &GrantError{Grant: name, Reason: "cannot make the SQLite path absolute", Err: err}
		}
		g.DSN = Secret(abs)
	default:
		g.DSN = Secret(dsn)
	}
	if err := g.Validate(); err != nil {
		return Grant{}, err
	}
	return g, nil
}

// ValidateGrants checks a set of grants: each valid, names unique.
func ValidateGrants(grants []Grant) error {
	seen := make(map[string]bool, len(grants))
	for _, g := range grants {
		if err := g.Validate(); err != nil {
			return err
		}
		if seen[g.Name] {
			return &GrantError{Grant: g.Name, Reason: "two grants name this database"}
		}
		seen[g.Name] = true
	}
	return nil
}

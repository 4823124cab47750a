// Package pgtest starts a real PostgreSQL server for tests: Debian's
// postgresql binaries, a cluster made by initdb in a temporary directory,
// listening on a free loopback port with its unix socket in that
// directory, stopped and removed by Stop. Since initdb and postgres refuse
// to run as root, and tests run as root in CI, the server runs as the
// unprivileged user nobody when the test process is root.
//
// A test package shares one server: Lazy starts it on first use and the
// package's TestMain stops it. Where the binaries are missing, Require
// skips the test with a message, and fails it under CI=true.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ErrMissing is returned when the PostgreSQL binaries are not installed.
var ErrMissing = errors.New("pgtest: PostgreSQL binaries (initdb, pg_ctl, postgres) not found; apt-get install postgresql")

// Server is a running PostgreSQL cluster.
type Server struct {
	// Port is the loopback TCP port; SocketDir holds its unix socket.
	Port      int
	SocketDir string
	// Superuser is the cluster's superuser, "postgres", trusted without a
	// password from loopback and the socket.
	Superuser string

	dir, bin string
	cred     *syscall.Credential
}

// DSN returns a URL for user on database db over loopback TCP.
func (s *Server) DSN(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, s.Port, db)
}

// binDir finds the newest /usr/lib/postgresql/*/bin with initdb, or the
// directory of an initdb on PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(r), nil
		}
	}
	return "", ErrMissing
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start creates and starts a cluster. Configuration lines in conf are
// appended to postgresql.conf (such as "max_connections = 20").
func Start(conf ...string) (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, SocketDir: dir, Superuser: "postgres"}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: running as root and no user nobody to run PostgreSQL as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := s.run("initdb", "-D", data, "-U", s.Superuser, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		s.remove()
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	// A few tries: the free port found may be taken before the server
	// binds it.
	for attempt := 0; ; attempt++ {
		s.Port, err = freePort()
		if err != nil {
			s.remove()
			return nil, err
		}
		lines := append([]string{
			"listen_addresses = '127.0.0.1'",
			fmt.Sprintf("port = %d", s.Port),
			fmt.Sprintf("unix_socket_directories = '%s'", dir),
			"fsync = off", "synchronous_commit = off", "full_page_writes = off",
			"max_connections = 40", "shared_buffers = 16MB",
			"deadlock_timeout = 100ms",
		}, conf...)
		var b bytes.Buffer
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		if err := os.WriteFile(filepath.Join(data, "postgresql.auto.conf"), b.Bytes(), 0o600); err != nil {
			s.remove()
			return nil, err
		}
		if s.cred != nil {
			os.Chown(filepath.Join(data, "postgresql.auto.conf"), int(s.cred.Uid), int(s.cred.Gid))
		}
		out, err := s.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "start")
		if err == nil {
			return s, nil
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "log"))
			s.remove()
			return nil, fmt.Errorf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, log)
		}
	}
}

// Stop stops the server at once and removes its files.
func (s *Server) Stop() {
	if s == nil {
		return
	}
	s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "-t", "30", "stop")
	s.remove()
}

func (s *Server) remove() { os.RemoveAll(s.dir) }

// Psql runs SQL through psql as the superuser on database db, for setting
// up fixtures.
func (s *Server) Psql(db, sql string) (string, error) {
	out, err := s.run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", s.SocketDir, "-p", strconv.Itoa(s.Port),
		"-U", s.Superuser, "-d", db, "-c", sql)
	return string(out), err
}

func (s *Server) run(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Lazy starts one server for a test package, on first use.
type Lazy struct {
	// Conf is passed to Start.
	Conf []string
	// Setup, if set, runs once after the server starts (create roles,
	// databases, tables).
	Setup func(*Server) error

	once sync.Once
	srv  *Server
	err  error
}

// Get returns the server, starting it the first time.
func (l *Lazy) Get() (*Server, error) {
	l.once.Do(func() {
		l.srv, l.err = Start(l.Conf...)
		if l.err == nil && l.Setup != nil {
			if l.err = l.Setup(l.srv); l.err != nil {
				l.srv.Stop()
				l.srv = nil
			}
		}
	})
	return l.srv, l.err
}

// Require returns the server for t, starting it the first time. Missing
// binaries skip t with a message, or fail it under CI=true; any other
// failure to start fails it.
func (l *Lazy) Require(t testing.TB) *Server {
	t.Helper()
	s, err := l.Get()
	switch {
	case errors.Is(err, ErrMissing) && os.Getenv("CI") != "true":
		t.Skipf("skipping: %v", err)
	case err != nil:
		t.Fatal(err)
	}
	return s
}

// Stop stops the server if it was started. Call it from TestMain after
// m.Run.
func (l *Lazy) Stop() {
	if l.srv != nil {
		l.srv.Stop()
	}
}

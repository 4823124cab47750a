// Package nettest provides loopback-only network fixtures for tests of
// the HTTP capability: servers that misbehave in the ways the capability
// must survive. Every fixture listens on 127.0.0.1 and nothing here dials
// any other address.
package nettest

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// CountingListener counts the connections it accepts, so a test can show
// that a denied request sent no packet to the server.
type CountingListener struct {
	net.Listener
	n atomic.Int64
}

// Accept accepts and counts a connection.
func (l *CountingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// Accepted is the number of connections accepted so far.
func (l *CountingListener) Accepted() int64 { return l.n.Load() }

// Listen returns a counting listener on 127.0.0.1, closed when the test
// ends.
func Listen(t testing.TB) *CountingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &CountingListener{Listener: l}
}

// Silent returns the address of a server on 127.0.0.1 that accepts TCP
// connections and never sends a byte. The connections are closed when the
// test ends.
func Silent(t testing.TB) string {
	t.Helper()
	l := Listen(t)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// ClosedPort returns an address on 127.0.0.1 where nothing listens, so a
// connection is refused.
func ClosedPort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

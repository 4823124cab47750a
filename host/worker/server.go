package worker

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures an embedded nats-server with JetStream.
type ServerConfig struct {
	// StoreDir is where JetStream keeps its file storage; required.
	StoreDir string
	// Listen is the client address, host:port; a port of 0 picks a free
	// one. Empty means 127.0.0.1:4222.
	Listen string
	// SyncAlways makes JetStream write every message to disk before
	// acknowledging it, so that not even a machine crash loses an
	// acknowledged message; without it, a message reaches the operating
	// system at once and the disk within the sync interval (2 minutes),
	// which a process crash does not lose.
	SyncAlways bool
	// Name is the server's name, unique in a cluster; empty picks one.
	Name string
	// ClusterName, ClusterListen and Routes join the server to a cluster:
	// its name, the host:port other servers route to, and their route
	// URLs (nats-route://host:port). Empty means no cluster.
	ClusterName   string
	ClusterListen string
	Routes        []string
	// Logger receives the server's log; nil discards it.
	Logger hclog.Logger
}

// Server is an embedded nats-server.
type Server struct {
	s *server.Server
}

// StartServer starts an embedded nats-server with JetStream file storage
// under cfg.StoreDir and waits until it accepts clients (and, in a
// cluster, until JetStream is ready to serve).
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, &ConfigError{Field: "StoreDir", Problem: "empty: JetStream needs a directory for its file storage"}
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:4222"
	}
	host, port, err := splitHostPort(listen)
	if err != nil {
		return nil, &ConfigError{Field: "Listen", Problem: err.Error()}
	}
	opts := &server.Options{
		ServerName: cfg.Name, Host: host, Port: port,
		JetStream: true, StoreDir: cfg.StoreDir, SyncAlways: cfg.SyncAlways,
		NoSigs: true, NoLog: cfg.Logger == nil,
		// A result or an assignment is one JSON document; 8 MiB covers
		// the largest step input the CLI accepts with room.
		MaxPayload: 8 << 20,
	}
	if cfg.ClusterName != "" {
		ch, cp, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, &ConfigError{Field: "ClusterListen", Problem: err.Error()}
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: ch, Port: cp}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil || u.Host == "" {
				return nil, &ConfigError{Field: "Routes", Problem: fmt.Sprintf("%q is not a route URL such as nats-route://127.0.0.1:6222", r)}
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("worker: starting nats-server: %w", err)
	}
	if cfg.Logger != nil {
		s.SetLoggerV2(serverLogger{cfg.Logger.Named("nats")}, false, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("worker: nats-server on %s did not start within 30s (is the address in use?)", listen)
	}
	return &Server{s: s}, nil
}

// ClientURL is the URL clients connect to.
func (s *Server) ClientURL() string { return s.s.ClientURL() }

// ClusterAddr is the address other servers route to, or "" outside a
// cluster.
func (s *Server) ClusterAddr() string {
	if a := s.s.ClusterAddr(); a != nil {
		return a.String()
	}
	return ""
}

// NATS is the server itself, for in-process connections
// (nats.InProcessServer).
func (s *Server) NATS() *server.Server { return s.s }

// Shutdown stops the server and waits until it has stopped; its store
// stays on disk for the next start.
func (s *Server) Shutdown() {
	s.s.Shutdown()
	s.s.WaitForShutdown()
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port: %v", hp, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("%q has no valid port", hp)
	}
	if n == 0 {
		n = server.RANDOM_PORT
	}
	return h, n, nil
}

// serverLogger hands nats-server's log to hclog.
type serverLogger struct{ l hclog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Warnf(format string, v ...any)   { l.l.Warn(fmt.Sprintf(format, v...)) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Errorf(format string, v ...any)  { l.l.Error(fmt.Sprintf(format, v...)) }
func (l serverLogger) Debugf(format string, v ...any)  { l.l.Debug(fmt.Sprintf(format, v...)) }
func (l serverLogger) Tracef(format string, v ...any)  { l.l.Trace(fmt.Sprintf(format, v...)) }

package httpcap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// Causes recorded when one of a request's own timeouts ends it; the
// step's causes (its deadline, its cancellation) are the step's.
var (
	errConnectTimeout = errors.New("connect timeout")
	errTLSTimeout     = errors.New("TLS handshake timeout")
	errHeaderTimeout  = errors.New("response header timeout")
	errTotalTimeout   = errors.New("total timeout")
)

// resolver is what the dialer asks for a name's addresses;
// *net.Resolver is one.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// controlFunc is net.Dialer's ControlContext.
type controlFunc func(ctx context.Context, network, address string, c syscall.RawConn) error

// dialFunc connects to an address that has passed every check, "ip:port",
// calling control on the socket before it connects.
type dialFunc func(ctx context.Context, network, addr string, control controlFunc) (net.Conn, error)

// dialer connects for one grant. It resolves a name once, checks every
// address it got, and dials only checked addresses, each again checked
// at connect time on the socket itself.
type dialer struct {
	s *Session
	r *rule
}

// timeouts are the grant's connect and TLS timeouts, or the request's
// where shorter. The step's end bounds both through the session.
func (d dialer) timeouts(ctx context.Context) (connect, handshake time.Duration) {
	connect, handshake = d.r.ConnectTimeout, d.r.TLSTimeout
	if rs, ok := ctx.Value(reqKey{}).(*reqState); ok {
		connect = shorter(connect, rs.timeouts.Connect)
		handshake = shorter(handshake, rs.timeouts.TLS)
	}
	return connect, handshake
}

// shorter returns override when it is set and shorter than d.
func shorter(d, override time.Duration) time.Duration {
	if override > 0 && override < d {
		return override
	}
	return d
}

// withSession returns ctx cancelled also when the session ends: the
// transport detaches dials from the request's cancellation, so without it
// a dial could outlive its step.
func (d dialer) withSession(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(d.s.ctx, func() { cancel(context.Cause(d.s.ctx)) })
	return ctx, func(cause error) { stop(); cancel(cause) }
}

// DialContext is the transport's dialer for http.
func (d dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := d.withSession(ctx)
	defer cancel(nil)
	timeout, _ := d.timeouts(ctx)
	return d.dialTCP(ctx, addr, timeout)
}

// DialTLSContext is the transport's dialer for https: the TCP connection
// as DialContext makes it, then the TLS handshake under its own timeout.
func (d dialer) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := d.withSession(ctx)
	defer cancel(nil)
	timeout, tlsTimeout := d.timeouts(ctx)
	conn, err := d.dialTCP(ctx, addr, timeout)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(addr)
	name, ip, _ := ParseHost(host) // dialTCP has parsed it already
	if ip.IsValid() {
		name = ip.String()
	}
	cfg := &tls.Config{ServerName: name, RootCAs: d.s.cfg.rootCAs, MinVersion: tls.VersionTLS12}
	tctx, stop := context.WithTimeoutCause(ctx, tlsTimeout, errTLSTimeout)
	defer stop()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(tctx); err != nil {
		conn.Close()
		switch cause := context.Cause(tctx); {
		case errors.Is(cause, errTLSTimeout):
			return nil, &Error{Kind: ErrConnectTimeout, Grant: d.r.Name, Reason: fmt.Sprintf("TLS handshake with %s did not finish within %s", addr, tlsTimeout), Err: err}
		case tctx.Err() != nil:
			return nil, &Error{Kind: ErrStepEnded, Grant: d.r.Name, Reason: "step ended during the TLS handshake", Err: cause}
		}
		return nil, tlsError(d.r.Name, addr, err)
	}
	return tc, nil
}

// tlsError classifies a failed handshake: a certificate that was not
// accepted is ErrTLS, a peer that does not speak TLS is ErrProtocol, and
// a connection that broke is ErrNetwork.
func tlsError(grant, addr string, err error) *Error {
	var (
		verr  *tls.CertificateVerificationError
		unk   x509.UnknownAuthorityError
		host  x509.HostnameError
		inval x509.CertificateInvalidError
		alert tls.AlertError
		rec   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &unk), errors.As(err, &host), errors.As(err, &inval):
		return &Error{Kind: ErrTLS, Grant: grant, Reason: "the certificate of " + addr + " was not accepted: " + err.Error(), Err: err}
	case errors.As(err, &alert):
		return &Error{Kind: ErrTLS, Grant: grant, Reason: "TLS handshake with " + addr + " failed: " + err.Error(), Err: err}
	case errors.As(err, &rec):
		return &Error{Kind: ErrProtocol, Grant: grant, Reason: addr + " does not speak TLS", Err: err}
	}
	return &Error{Kind: ErrNetwork, Grant: grant, Reason: "TLS handshake with " + addr + ": " + err.Error(), Err: err}
}

// dialTCP resolves the host of addr, checks every address, and connects
// to the first that accepts, within timeout nanoseconds.
func (d dialer) dialTCP(ctx context.Context, addr string, timeout time.Duration) (net.Conn, error) {
	deny := func(kind error, format string, args ...any) (net.Conn, error) {
		return nil, &Error{Kind: kind, Grant: d.r.Name, Reason: fmt.Sprintf(format, args...)}
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return deny(ErrInvalid, "bad address %q: %v", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return deny(ErrInvalid, "bad port in %q", addr)
	}
	name, ip, err := ParseHost(host)
	if err != nil {
		return deny(ErrInvalid, "%v", err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errConnectTimeout)
	defer cancel()

	ips := []netip.Addr{ip}
	if !ip.IsValid() {
		ips, err = d.s.cfg.resolver.LookupNetIP(ctx, "ip", name)
		// The resolver hands IPv4 answers from a hosts file back in their
		// 16-byte form; they are IPv4 addresses and are checked and dialled
		// as such.
		for i, a := range ips {
			ips[i] = a.Unmap()
		}
		if err != nil || len(ips) == 0 {
			if e := d.ended(ctx, "resolving "+name, timeout, err); e != nil {
				return nil, e
			}
			return nil, &Error{Kind: ErrNetwork, Grant: d.r.Name, Reason: fmt.Sprintf("cannot resolve %s: %v", name, err), Err: err}
		}
	}
	// Every address must pass: a name that resolves to one public and one
	// private address is denied whole, so the answer's order cannot
	// matter.
	for _, a := range ips {
		if e := addrError(d.r, a, name); e != nil {
			return nil, e
		}
	}
	var firstErr error
	for _, a := range ips {
		conn, err := d.s.cfg.dial(ctx, "tcp", netip.AddrPortFrom(a, uint16(port)).String(), d.control)
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if e := d.ended(ctx, "connecting to "+addr, timeout, firstErr); e != nil {
		return nil, e
	}
	var he *Error
	if errors.As(firstErr, &he) {
		return nil, he // the connect-time check refused the socket
	}
	return nil, &Error{Kind: ErrNetwork, Grant: d.r.Name, Reason: fmt.Sprintf("cannot connect to %s: %v", addr, firstErr), Err: firstErr}
}

// ended returns the error for a dial that ended with the session (the
// step), or with its own connect timeout; nil otherwise. A dial can see
// its deadline pass as an i/o timeout a moment before the context
// records it, so a timeout error counts too: the connect timeout is the
// only deadline a dial has.
func (d dialer) ended(ctx context.Context, doing string, timeout time.Duration, err error) *Error {
	if d.s.ctx.Err() != nil {
		return &Error{Kind: ErrStepEnded, Grant: d.r.Name, Reason: "step ended while " + doing, Err: context.Cause(d.s.ctx)}
	}
	var ne net.Error
	if errors.Is(context.Cause(ctx), errConnectTimeout) || errors.As(err, &ne) && ne.Timeout() {
		return &Error{Kind: ErrConnectTimeout, Grant: d.r.Name, Reason: fmt.Sprintf("%s did not finish within the connect timeout of %s", doing, timeout), Err: err}
	}
	if ctx.Err() != nil {
		return &Error{Kind: ErrStepEnded, Grant: d.r.Name, Reason: "request ended while " + doing, Err: context.Cause(ctx)}
	}
	return nil
}

// control checks, on the socket itself and before it connects, the
// address the kernel is about to connect to. The dialer has checked the
// address already; this second check makes "the address checked is the
// address dialled" hold even if the code between the two changed.
func (d dialer) control(_ context.Context, network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &Error{Kind: ErrDenied, Grant: d.r.Name, Reason: fmt.Sprintf("cannot check address %q: %v", address, err)}
	}
	return addrError(d.r, ap.Addr(), "")
}

// netDial is the dial of a real session: net.Dialer with the connect-time
// check.
func netDial(ctx context.Context, network, addr string, control controlFunc) (net.Conn, error) {
	nd := net.Dialer{ControlContext: control}
	return nd.DialContext(ctx, network, addr)
}

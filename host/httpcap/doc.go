// Package httpcap is blockhost's HTTP capability: the grants that say which
// requests a step may send, the pure decisions that apply them, and the
// client that sends requests under them for WebAssembly blocks (through
// the http_* host functions) and built-in blocks alike.
//
// A step reaches the network only through a Session made from a Policy,
// and a Policy only through grants a reviewer can read (docs/capabilities.md).
// The package guarantees that:
//
//   - a request no grant allows — scheme, host, port, method and path —
//     fails with ErrDenied before anything is resolved or dialled, and the
//     error names the grants it was checked against;
//   - the address checked is the address dialled: names are resolved once,
//     every resolved address is checked, the checked address is dialled,
//     and the socket's address is checked again at connect time
//     (net.Dialer.ControlContext), so DNS rebinding cannot slip past;
//   - loopback, private, link-local (cloud metadata included), multicast,
//     unspecified, IPv4-mapped IPv6 and every other special-purpose range
//     (SpecialRange) are denied unless the grant lists the range in
//     AllowRanges;
//   - a host is read the way the dialer reads it: numeric IPv4 in any
//     inet_aton spelling (2130706433, 0x7f.1, 0177.0.0.1, 127.1),
//     bracketed IPv6, and never userinfo;
//   - every redirect hop is checked again, grants and addresses, and
//     redirects are followed only as far as the first request's grant says;
//   - from the first redirect hop to another scheme, host or port on,
//     Authorization, Cookie, Proxy-Authorization, Referer and the
//     grants' SensitiveHeaders are not sent (RedirectStripsHeaders);
//   - a path with a dot segment hidden behind ';' parameters ("..;") is
//     refused, and a path with ';' matches no prefix narrower than "/",
//     so a back end that drops parameters cannot be led out of a prefix;
//   - a wildcard over a public suffix ("*.com") and allow_ranges holding
//     public addresses ("0.0.0.0/0") are refused unless the grant says
//     AllowBroad;
//   - connect (DNS and TCP), TLS handshake, response headers and total
//     time are bounded per request, and every one of them by the step's
//     context: when the step ends, requests in flight are aborted and their
//     connections closed;
//   - request bodies and headers, response bodies and headers, and requests
//     in flight per grant are capped;
//   - every failure is an *Error with the step error code and class the
//     retry layer uses (Classify), and every request and denial is logged.
package httpcap

package serve

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// apiError is a 4xx or 5xx answer: {"error": {"code", "field", "message"}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func errField(field, msg string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Field: field, Message: field + ": " + msg}
}

func errNotFound(id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "id", Message: fmt.Sprintf("no step %q", id)}
}

func errUnavailable(msg string) *apiError {
	return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: msg}
}

func errInternal(err error) *apiError {
	return &apiError{Status: http.StatusInternalServerError, Code: "internal_error", Message: err.Error()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="blockhost"`)
	}
	writeJSON(w, e.Status, map[string]*apiError{"error": e})
}

// tokenCookie carries a token for the status page in a browser, set by
// POST /login: HttpOnly, SameSite=Strict.
const tokenCookie = "blockhost_token"

// authenticate finds who a request acts as: the bearer token's identity,
// or the page's cookie; without either, local under --insecure-local and
// nobody otherwise. Tokens are compared by their SHA-256, so the lookup
// reveals nothing about the tokens themselves.
func (s *Server) authenticate(r *http.Request) (principal, *apiError) {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			return principal{}, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Field: "Authorization", Message: "Authorization: want \"Bearer TOKEN\""}
		}
		tok = strings.TrimSpace(t)
	} else if c, err := r.Cookie(tokenCookie); err == nil && c.Value != "" {
		tok = c.Value
	}
	if tok == "" {
		if s.cfg.insecureLocal {
			return local, nil
		}
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Field: "Authorization", Message: "no bearer token: send Authorization: Bearer TOKEN"}
	}
	p, ok := s.tokens[sha256.Sum256([]byte(tok))]
	if !ok {
		return principal{}, &apiError{Status: http.StatusUnauthorized, Code: "unauthorized", Field: "Authorization", Message: "unknown token"}
	}
	return p, nil
}

// guard checks what every request must pass before its handler: under
// --insecure-local the Host header names this machine (no DNS
// rebinding), and a state-changing request from a browser comes from the
// page's own origin (no cross-site request forgery).
func (s *Server) guard(r *http.Request) *apiError {
	if s.cfg.insecureLocal && !loopbackHost(r.Host) {
		return &apiError{Status: http.StatusForbidden, Code: "forbidden", Field: "Host",
			Message: fmt.Sprintf("Host %q: --insecure-local answers only to localhost and loopback addresses", r.Host)}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || u.Host != r.Host {
				return &apiError{Status: http.StatusForbidden, Code: "forbidden", Field: "Origin",
					Message: fmt.Sprintf("Origin %q is not this server", o)}
			}
		}
	}
	return nil
}

func loopbackHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// authed wraps a handler that acts for a principal.
func (s *Server) authed(route string, h func(http.ResponseWriter, *http.Request, principal)) http.Handler {
	return s.instrument(route, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := s.guard(r); e != nil {
			writeError(w, e)
			return
		}
		p, e := s.authenticate(r)
		if e != nil {
			writeError(w, e)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.maxBody)
		h(w, r, p)
	}))
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST /v1/steps", s.authed("submit", s.handleSubmit))
	mux.Handle("GET /v1/steps", s.authed("list", s.handleList))
	mux.Handle("GET /v1/steps/{id}", s.authed("get", s.handleGet))
	mux.Handle("DELETE /v1/steps/{id}", s.authed("cancel", s.handleCancel))
	mux.Handle("GET /v1/blocks", s.authed("blocks", s.handleBlocks))
	mux.Handle("GET /v1/approvals", s.authed("approvals", s.handleApprovals))
	mux.Handle("POST /v1/approvals/{id}", s.authed("decide", s.handleDecide))
	mux.Handle("GET /metrics", s.authed("metrics", func(w http.ResponseWriter, r *http.Request, _ principal) {
		promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	}))
	mux.Handle("GET /_health", s.instrument("health", http.HandlerFunc(s.handleHealth)))
	mux.Handle("GET /{$}", s.instrument("page", http.HandlerFunc(s.handlePage)))
	mux.Handle("POST /login", s.instrument("login", http.HandlerFunc(s.handleLogin)))
	mux.Handle("POST /logout", s.instrument("logout", http.HandlerFunc(s.handleLogout)))
	mux.Handle("GET /static/{file}", s.instrument("static", http.HandlerFunc(s.handleStatic)))
	// Everything else, and a known path with the wrong method, answers in
	// JSON like the rest of the API.
	for _, path := range []string{"/v1/steps", "/v1/steps/{id}", "/v1/blocks", "/v1/approvals", "/v1/approvals/{id}", "/_health", "/metrics", "/login", "/logout"} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Field: "method",
				Message: fmt.Sprintf("%s is not allowed on %s", r.Method, r.URL.Path)})
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Code: "not_found", Field: "path", Message: fmt.Sprintf("no such path %q", r.URL.Path)})
	})
	return mux
}

// decodeJSON reads a JSON body into v, strictly: unknown fields, trailing
// data and type mismatches are errors naming the field.
func decodeJSON(r *http.Request, v any) *apiError {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return &apiError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Field: "Content-Type",
				Message: fmt.Sprintf("Content-Type %q: send application/json", ct)}
		}
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON object")
	}
	if err == nil {
		if _, e := dec.Token(); e != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	return bodyError(err)
}

func bodyError(err error) *apiError {
	if err == nil {
		return nil
	}
	var mbe *http.MaxBytesError
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Field: "body",
			Message: fmt.Sprintf("body: larger than %d bytes", mbe.Limit)}
	case errors.As(err, &te):
		return errField(te.Field, fmt.Sprintf("want %s, not %s", te.Type, te.Value))
	case errors.As(err, &se):
		return errField("body", fmt.Sprintf("not JSON: %v (at byte %d)", se, se.Offset))
	case errors.Is(err, io.EOF):
		return errField("body", "empty: send a JSON object")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return errField(f, "unknown field")
	}
	return errField("body", err.Error())
}

// waitParam reads ?wait=: a duration such as 30s, at most the configured
// maximum.
func (s *Server) waitParam(r *http.Request) (time.Duration, *apiError) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errField("wait", fmt.Sprintf("%q is not a duration such as 30s", v))
	}
	if d > s.cfg.maxWait {
		return 0, errField("wait", fmt.Sprintf("%s is more than the server's maximum of %s", d, s.cfg.maxWait))
	}
	return d, nil
}

// answer writes a step: its result in docs/abi.md's form when it has
// ended and the client waited for it, else its view; 202 while it has
// not ended.
func answer(w http.ResponseWriter, r *stepRow, waited bool, created bool) {
	w.Header().Set("Location", "/v1/steps/"+r.ID)
	switch {
	case r.final() && waited:
		writeJSON(w, http.StatusOK, r.Result)
	case r.final():
		writeJSON(w, http.StatusOK, r.view())
	case created || waited:
		writeJSON(w, http.StatusAccepted, r.view())
	default:
		writeJSON(w, http.StatusOK, r.view())
	}
}

func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request, p principal) {
	wait, e := s.waitParam(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var sub Submission
	if e := decodeJSON(r, &sub); e != nil {
		writeError(w, e)
		return
	}
	row, replay, e := s.submit(r.Context(), p, &sub)
	if e != nil {
		writeError(w, e)
		return
	}
	if replay {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	s.await(r.Context(), row.ID, wait)
	if wait > 0 || replay {
		if row, e = s.lookup(r.Context(), p, row.ID); e != nil {
			writeError(w, e)
			return
		}
	}
	answer(w, row, wait > 0, !replay)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, p principal) {
	wait, e := s.waitParam(r)
	if e != nil {
		writeError(w, e)
		return
	}
	id := r.PathValue("id")
	row, e := s.lookup(r.Context(), p, id)
	if e != nil {
		writeError(w, e)
		return
	}
	if wait > 0 && !row.final() {
		s.await(r.Context(), id, wait)
		if row, e = s.lookup(r.Context(), p, id); e != nil {
			writeError(w, e)
			return
		}
	}
	writeJSON(w, http.StatusOK, row.view())
}

func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request, p principal) {
	row, e := s.cancel(r.Context(), p, r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, row.view())
}

// States a listing may filter on.
var listStates = map[string]bool{stateQueued: true, stateRunning: true, stateWaiting: true,
	"success": true, "error": true, "timeout": true, "cancelled": true}

// StepList is the body of GET /v1/steps.
type StepList struct {
	Steps      []*StepView `json:"steps"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, p principal) {
	q := r.URL.Query()
	f := filter{State: q.Get("status"), Block: q.Get("block"), Before: q.Get("cursor"), Limit: 50}
	if f.State != "" && !listStates[f.State] {
		writeError(w, errField("status", fmt.Sprintf("%q: want queued, running, waiting, success, error, timeout or cancelled", f.State)))
		return
	}
	if f.Before != "" {
		if _, err := hex.DecodeString(f.Before); err != nil || len(f.Before) != 32 {
			writeError(w, errField("cursor", "not a cursor from next_cursor"))
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, errField("limit", fmt.Sprintf("%q: want 1 to 500", v)))
			return
		}
		f.Limit = n
	}
	f.Tenant = p.tenant
	if p.operator {
		f.Tenant = q.Get("tenant")
	}
	want := f.Limit
	f.Limit++
	rows, err := s.st.list(r.Context(), f)
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	out := StepList{Steps: []*StepView{}}
	for i, row := range rows {
		if i == want {
			out.NextCursor = rows[i-1].ID
			break
		}
		out.Steps = append(out.Steps, row.view())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleBlocks(w http.ResponseWriter, _ *http.Request, _ principal) {
	out := struct {
		Blocks []BlockView `json:"blocks"`
	}{Blocks: []BlockView{}}
	for _, n := range s.cat.names() {
		out.Blocks = append(out.Blocks, s.cat[n].view())
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleApprovals(w http.ResponseWriter, r *http.Request, p principal) {
	tenant := p.tenant
	if p.operator {
		tenant = ""
	}
	rows, err := s.st.pendingApprovals(r.Context(), tenant, 500)
	if err != nil {
		writeError(w, errInternal(err))
		return
	}
	out := StepList{Steps: []*StepView{}}
	for _, row := range rows {
		out.Steps = append(out.Steps, row.view())
	}
	writeJSON(w, http.StatusOK, out)
}

// Decision is the body of POST /v1/approvals/{id}.
type Decision struct {
	// Approved is the decision. Required.
	Approved *bool `json:"approved"`
	// Comment is shown with the decision and returned in the output.
	Comment string `json:"comment"`
}

func (s *Server) handleDecide(w http.ResponseWriter, r *http.Request, p principal) {
	id := r.PathValue("id")
	var d Decision
	form := false
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		// The status page without JavaScript: a plain form post.
		form = true
		if err := r.ParseForm(); err != nil {
			writeError(w, bodyError(err))
			return
		}
		switch r.PostForm.Get("approved") {
		case "true":
			d.Approved = new(bool)
			*d.Approved = true
		case "false":
			d.Approved = new(bool)
		}
		d.Comment = r.PostForm.Get("comment")
	} else if e := decodeJSON(r, &d); e != nil {
		writeError(w, e)
		return
	}
	if d.Approved == nil {
		writeError(w, errField("approved", "missing: true or false"))
		return
	}
	row, e := s.decide(r.Context(), p, id, *d.Approved, d.Comment)
	if e != nil {
		writeError(w, e)
		return
	}
	if form {
		http.Redirect(w, r, "/#step-"+id, http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, row.view())
}

// handleHealth answers as the worker contract's health check does.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	status, code := "healthy", http.StatusOK
	if s.isDraining() {
		status, code = "draining", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{"status": status, "timestamp": time.Now().UTC().Format(time.RFC3339Nano)})
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if e := s.guard(r); e != nil {
		writeError(w, e)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if err := r.ParseForm(); err != nil {
		writeError(w, bodyError(err))
		return
	}
	tok := strings.TrimSpace(r.PostForm.Get("token"))
	if _, ok := s.tokens[sha256.Sum256([]byte(tok))]; !ok {
		http.Redirect(w, r, "/?login=failed", http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int((12 * time.Hour).Seconds())})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if e := s.guard(r); e != nil {
		writeError(w, e)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: "", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

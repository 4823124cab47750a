package sqlcap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/capability"
	"github.com/blockhost/blockhost/host/engine"
)

// Name is the capability's name in grants, audit records and abi.Functions.
const Name = abi.CapabilitySQL

func init() { capability.Register(Capability{}) }

// Capability is the SQL capability as the host sees it (host/capability):
// the sql_* host functions of docs/abi.md §10, served for each step from
// the step's *Set of granted databases; without one every statement is
// denied.
type Capability struct{}

var _ capability.Capability = Capability{}

// Name returns "sql".
func (Capability) Name() string { return Name }

// Functions returns the sql_* host functions.
func (Capability) Functions() []capability.Func {
	return []capability.Func{
		capability.Fn(abi.FuncSQLQuery, (*stepState).query),
		capability.Fn(abi.FuncSQLResult, (*stepState).result),
		capability.Fn(abi.FuncSQLExec, (*stepState).exec),
		capability.LastErrorFunc(abi.FuncSQLLastError, func(s *stepState) *capability.LastError { return &s.last }),
	}
}

// Open makes the step's state from grant, a *Set or nil. It opens
// nothing: a database's pool is opened by the first statement any step
// sends it, and shared from then on (Pool).
func (Capability) Open(_ context.Context, step capability.Step, grant any) (capability.State, error) {
	s := &stepState{step: step}
	switch g := grant.(type) {
	case nil:
	case *Set:
		s.dbs = g
	default:
		return nil, capability.ErrNoGrant
	}
	return s, nil
}

// stepState is one step's SQL state.
type stepState struct {
	step capability.Step
	dbs  *Set // nil when the step has no database grants
	last capability.LastError
	// held is the last query's result until sql_result takes it.
	held    []byte
	hasHeld bool
}

// Close releases the held result.
func (s *stepState) Close() { s.held, s.hasHeld = nil, false }

// request reads and decodes a request from the guest's memory.
func (s *stepState) request(mem engine.Memory, ptr, n uint32) (*abi.SQLRequest, abi.Result) {
	if mem == nil {
		return nil, s.last.Invalid("the block has no memory")
	}
	if n > abi.MaxSQLRequest {
		return nil, s.last.Fail(abi.ResultLimit, abi.CodeQuotaExceeded, "request of %d bytes is over the %d allowed", n, abi.MaxSQLRequest)
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return nil, s.last.Invalid("the request is out of bounds")
	}
	var req abi.SQLRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, s.last.Fail(abi.ResultInvalid, abi.CodeInvalidInput, "the request is not a valid JSON SQL request: %v", err)
	}
	return &req, abi.ResultOK
}

// failed records err as the call's detail and audits it. Once the step
// is over the result is timeout or cancelled by its cause.
func (s *stepState) failed(ctx context.Context, op string, req *abi.SQLRequest, start time.Time, err error) abi.Result {
	if r, over := s.step.Over(ctx); over {
		return r
	}
	c := Classify(err)
	s.last.Set(StepError(err))
	ev := capability.Event{Capability: Name, Op: op, Target: req.Database, Grant: req.Database, Duration: time.Since(start)}
	if errors.Is(err, ErrDenied) {
		ev.Denied, ev.Reason = true, err.Error()
	} else {
		ev.Error = err.Error()
	}
	s.step.Audit(ev)
	return c.Result
}

// query is sql_query(req_ptr, req_len, n_ptr) -> result.
func (s *stepState) query(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	reqPtr, reqLen, nPtr := uint32(args[0]), uint32(args[1]), uint32(args[2])
	s.held, s.hasHeld = nil, false
	req, r := s.request(mem, reqPtr, reqLen)
	if r != abi.ResultOK {
		return r
	}
	if _, ok := mem.Read(nPtr, 4); !ok {
		return s.last.Invalid("n_ptr is out of bounds")
	}
	start := time.Now()
	db, err := s.dbs.Get("query", req.Database)
	if err != nil {
		return s.failed(ctx, "query", req, start, err)
	}
	out, err := db.QueryJSON(ctx, req.Statement, req.Params)
	if err != nil {
		return s.failed(ctx, "query", req, start, err)
	}
	s.held, s.hasHeld = out, true
	mem.WriteUint32Le(nPtr, uint32(len(out)))
	s.step.Audit(capability.Event{Capability: Name, Op: "query", Target: req.Database, Grant: req.Database,
		Bytes: int64(len(out)), Duration: time.Since(start)})
	return abi.ResultOK
}

// result is sql_result(buf_ptr, buf_len, n_ptr) -> result.
func (s *stepState) result(_ context.Context, mem engine.Memory, args []uint64) abi.Result {
	if !s.hasHeld {
		return s.last.Fail(abi.ResultNotFound, abi.CodeInvalidInput, "no query result is held: call sql_query first")
	}
	r, why := capability.CopyOut(mem, s.held, uint32(args[0]), uint32(args[1]), uint32(args[2]))
	switch r {
	case abi.ResultOK:
		s.held, s.hasHeld = nil, false
	case abi.ResultInvalid:
		return s.last.Invalid(why)
	}
	return r
}

// exec is sql_exec(req_ptr, req_len, affected_ptr) -> result.
func (s *stepState) exec(ctx context.Context, mem engine.Memory, args []uint64) abi.Result {
	reqPtr, reqLen, affPtr := uint32(args[0]), uint32(args[1]), uint32(args[2])
	req, r := s.request(mem, reqPtr, reqLen)
	if r != abi.ResultOK {
		return r
	}
	if _, ok := mem.Read(affPtr, 8); !ok {
		return s.last.Invalid("affected_ptr is out of bounds")
	}
	start := time.Now()
	db, err := s.dbs.Get("exec", req.Database)
	if err != nil {
		return s.failed(ctx, "exec", req, start, err)
	}
	n, err := db.ExecJSON(ctx, req.Statement, req.Params)
	if err != nil {
		return s.failed(ctx, "exec", req, start, err)
	}
	mem.WriteUint64Le(affPtr, uint64(n))
	s.step.Audit(capability.Event{Capability: Name, Op: "exec", Target: req.Database, Grant: req.Database,
		Duration: time.Since(start), Fields: map[string]any{"rows_affected": n}})
	return abi.ResultOK
}

// DescribeGrant lists the databases a *Set grants, for the audit log and
// inspect: each one's name, driver, where it is with every secret left out
// (Grant.Describe), mode and caps. A DSN's password never appears.
func (Capability) DescribeGrant(grant any) any {
	set, _ := grant.(*Set)
	type auditGrant struct {
		Name      string `json:"name"`
		Driver    string `json:"driver"`
		Database  string `json:"database"`
		Mode      string `json:"mode"`
		TimeoutMS int64  `json:"timeout_ms"`
		MaxRows   int    `json:"max_rows"`
		MaxBytes  int    `json:"max_bytes"`
	}
	var out []auditGrant
	if set != nil {
		for _, g := range set.Grants() {
			g = g.WithDefaults()
			out = append(out, auditGrant{Name: g.Name, Driver: string(g.Driver), Database: g.Describe(), Mode: string(g.Mode),
				TimeoutMS: g.Timeout.Milliseconds(), MaxRows: g.MaxRows, MaxBytes: g.MaxBytes})
		}
	}
	return out
}

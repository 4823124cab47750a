package host

import (
	"maps"
	"slices"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/capability"
)

// The audit log is written here and nowhere else: the step's start and
// end by Block.Run, and every capability event through Audit, which every
// capability calls through capability.Step. A capability added to the
// host is audited with no code here.

// auditStart writes the step_start record: the module, the effective
// grants as each capability describes them, the names (never the values)
// of the granted environment variables, the limits, and what the caller
// told (step.Audit).
func (st *stepState) auditStart(step *Step) {
	grants := map[string]any{}
	if len(step.Grants.Env) > 0 {
		grants["env"] = slices.Sorted(maps.Keys(step.Grants.Env))
	}
	for _, c := range capabilities {
		g := step.Grants.grant(c.Name())
		if g == nil {
			continue
		}
		if d, ok := c.(capability.GrantDescriber); ok {
			grants[c.Name()] = d.DescribeGrant(g)
		} else {
			grants[c.Name()] = true
		}
	}
	l := st.limits
	st.audit.Write(&auditlog.Record{
		Event:  auditlog.EventStepStart,
		StepID: st.id, Block: st.block.name, Module: st.block.digest,
		Tenant: step.Audit.Tenant, IDs: step.Audit.IDs, ExtendedGrants: step.Audit.ExtendedGrants,
		Grants: grants,
		Limits: &auditlog.Limits{TimeoutMS: l.Timeout.Milliseconds(), Memory: l.Memory, Output: l.Output, Log: l.Log},
	})
}

// auditEnd writes the step_end record: the status and the error's code,
// never its message, which the block may have written (error_set).
func (st *stepState) auditEnd(res *abi.StepResult) {
	r := &auditlog.Record{Event: auditlog.EventStepEnd, StepID: st.id, Block: st.block.name, Module: st.block.digest,
		Status: string(res.Status)}
	if res.Error != nil {
		r.Code, r.CodeName = uint32(res.Error.Code), res.Error.Code.Name()
	}
	st.audit.Write(r)
}

// Audit writes a capability's event (capability.Step) when the runtime
// keeps an audit log.
func (st *stepState) Audit(e capability.Event) {
	if st.audit == nil {
		return
	}
	r := &auditlog.Record{Event: auditlog.EventCapability, StepID: st.id, Block: st.block.name, Module: st.block.digest,
		Capability: e.Capability, Op: e.Op, Target: e.Target, Grant: e.Grant, Denied: e.Denied, Reason: e.Reason,
		Error: e.Error, Bytes: e.Bytes, Details: e.Fields}
	if e.Duration > 0 {
		d := float64(e.Duration.Microseconds()) / 1000
		r.DurationMS = &d
	}
	st.audit.Write(r)
}

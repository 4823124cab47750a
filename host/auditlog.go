package host

import (
	"maps"
	"slices"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/auditlog"
	"github.com/blockhost/blockhost/host/capability"
)

// The audit log is written here and nowhere else: the step's start and
// end by Block.Run and NativeBlock.Run, and every capability event through
// Audit, which every capability calls through capability.Step (and a
// built-in block through Call.Audit). A capability added to the host is
// audited with no code here.

// stepAuditor writes one step's records: a WebAssembly block's
// (stepState) and a built-in block's (NativeBlock.Run) alike. Its log is
// nil when the runtime keeps no audit log, and then it writes nothing.
type stepAuditor struct {
	log                   *auditlog.Log
	stepID, block, module string
}

// start writes the step_start record: the module, the effective grants
// as each capability describes them, the names (never the values) of the
// granted environment variables, the limits, and what the caller told
// (step.Audit).
func (a stepAuditor) start(step *Step, l Limits) {
	if a.log == nil {
		return
	}
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
	a.log.Write(&auditlog.Record{
		Event:  auditlog.EventStepStart,
		StepID: a.stepID, Block: a.block, Module: a.module,
		Tenant: step.Audit.Tenant, IDs: step.Audit.IDs, ExtendedGrants: step.Audit.ExtendedGrants,
		Grants: grants,
		Limits: &auditlog.Limits{TimeoutMS: l.Timeout.Milliseconds(), Memory: l.Memory, Output: l.Output, Log: l.Log},
	})
}

// end writes the step_end record: the status and the error's code, never
// its message, which the block may have written (error_set).
func (a stepAuditor) end(res *abi.StepResult) {
	if a.log == nil {
		return
	}
	r := &auditlog.Record{Event: auditlog.EventStepEnd, StepID: a.stepID, Block: a.block, Module: a.module,
		Status: string(res.Status)}
	if res.Error != nil {
		r.Code, r.CodeName = uint32(res.Error.Code), res.Error.Code.Name()
	}
	a.log.Write(r)
}

// event writes a capability's event.
func (a stepAuditor) event(e capability.Event) {
	if a.log == nil {
		return
	}
	r := &auditlog.Record{Event: auditlog.EventCapability, StepID: a.stepID, Block: a.block, Module: a.module,
		Capability: e.Capability, Op: e.Op, Target: e.Target, Grant: e.Grant, Denied: e.Denied, Reason: e.Reason,
		Error: e.Error, Bytes: e.Bytes, Details: e.Fields}
	if e.Duration > 0 {
		d := float64(e.Duration.Microseconds()) / 1000
		r.DurationMS = &d
	}
	a.log.Write(r)
}

func (st *stepState) auditor() stepAuditor {
	return stepAuditor{log: st.audit, stepID: st.id, block: st.block.name, module: st.block.digest}
}

func (st *stepState) auditStart(step *Step) { st.auditor().start(step, st.limits) }

func (st *stepState) auditEnd(res *abi.StepResult) { st.auditor().end(res) }

// Audit writes a capability's event (capability.Step) when the runtime
// keeps an audit log.
func (st *stepState) Audit(e capability.Event) { st.auditor().event(e) }

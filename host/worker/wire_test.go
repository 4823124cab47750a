package worker_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/blockhost/blockhost/host/worker"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

func ptr[T any](v T) *T { return &v }

// golden pairs each wire message with its file under testdata/. Each is
// checked in both directions: the file decodes to the value, and the
// value encodes to the file.
var golden = []struct {
	file  string
	value any
}{
	{"assignment.json", &worker.Assignment{
		Version: "1", AssignmentID: "a-1", RequestID: "r-1", TenantID: "acme", TraceID: "t-1", RunID: "run-1",
		Executor: worker.Provider{ProviderID: "blockhost", Channel: "nats"},
		Job: worker.Job{Type: "http.request", Fields: map[string]json.RawMessage{
			"method": json.RawMessage(`"GET"`), "url": json.RawMessage(`"http://127.0.0.1:8080/items"`), "timeout_ms": json.RawMessage(`5000`)}},
		Options: &worker.Options{DeadlineMS: 30000, Retry: &worker.RetryOptions{MaxAttempts: 3}, Priority: "high"},
	}},
	{"ack_accepted.json", &worker.AssignmentAck{AssignmentID: "a-1", RequestID: "r-1", TenantID: "acme", TraceID: "t-1",
		Status: worker.AckAccepted, WorkerID: "w-1", AcknowledgedAt: 1764547200000}},
	{"ack_rejected.json", &worker.AssignmentAck{AssignmentID: "a-2", RequestID: "r-2", TenantID: "acme",
		Status: worker.AckRejected, Reason: worker.ReasonUnsupportedVersion, Message: `version "2" is not supported (want "1")`,
		WorkerID: "w-1", AcknowledgedAt: 1764547200000}},
	{"result_success.json", &worker.Result{Version: "1", AssignmentID: "a-1", RequestID: "r-1", TenantID: "acme", TraceID: "t-1",
		RunID: "run-1", ProviderID: "blockhost", Job: "http.request", Status: worker.StatusSuccess,
		Outputs:   json.RawMessage(`{"body":"[]","status":200,"status_code":200}`),
		LatencyMS: 12, Attempts: 1, CompletedAt: 1764547200012,
		Metadata: map[string]string{"block_type": "http.request", "step_id": "a-1", "worker_id": "w-1"}}},
	{"result_error.json", &worker.Result{Version: "1", AssignmentID: "a-3", RequestID: "r-3", TenantID: "acme",
		Job: "http.request", Status: worker.StatusError, ErrorCode: "NETWORK_ERROR", ErrorMessage: "connection refused",
		Error:     &worker.ResultError{Code: "network_error", Number: 3001, Message: "connection refused", Retryable: true, RetryAfterMS: ptr(int64(200))},
		LatencyMS: 950, RetriesUsed: 2, Attempts: 3, CompletedAt: 1764547200950,
		Metadata: map[string]string{"block_type": "http.request", "worker_id": "w-1"}}},
	{"result_cancelled.json", &worker.Result{Version: "1", AssignmentID: "a-4", RequestID: "r-4", TenantID: "acme",
		Job: "greet", Status: worker.StatusCancelled, ErrorCode: "CANCELLED_BY_USER", ErrorMessage: "cancelled",
		Error:     &worker.ResultError{Code: "cancelled_by_user", Number: 5001, Message: "cancelled"},
		LatencyMS: 3, Attempts: 1, CompletedAt: 1764547200003}},
	{"dead_letter.json", &worker.DeadLetter{AssignmentID: "a-2", RequestID: "r-2", TenantID: "acme",
		Reason: worker.ReasonUnsupportedVersion, Message: `version "2" is not supported (want "1")`, Deliveries: 1,
		WorkerID: "w-1", DeadAt: 1764547200000,
		Assignment: json.RawMessage(`{"version":"2","assignment_id":"a-2","request_id":"r-2","tenant_id":"acme","job":{"type":"greet"}}`)}},
	{"heartbeat.json", &worker.Heartbeat{WorkerID: "w-1", Version: "v0.3.0", Status: "ready", Capacity: 16, InFlight: 3,
		Timestamp: 1764547200000, Pools: []worker.PoolLoad{{Name: "default", Capacity: 16, InFlight: 3, QueueDepth: 0}},
		Breakers: map[string]string{"http:127.0.0.1:8080": "closed"}}},
	{"cancel.json", &worker.Cancel{AssignmentID: "a-1", Reason: "user asked"}},
	{"health.json", &worker.Health{Status: "healthy", Timestamp: "2025-12-01T00:00:00Z", WorkerID: "w-1"}},
}

func TestGolden(t *testing.T) {
	for _, g := range golden {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", g.file)
			enc, err := json.MarshalIndent(g.value, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			enc = append(enc, '\n')
			if *update {
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, want) {
				t.Errorf("encoding differs from %s:\n%s\nwant:\n%s", path, enc, want)
			}
			dec := reflect.New(reflect.TypeOf(g.value).Elem()).Interface()
			if err := json.Unmarshal(want, dec); err != nil {
				t.Fatal(err)
			}
			// Raw JSON fields keep the file's spacing, so compare the
			// decoded value by its compact encoding.
			got, _ := json.Marshal(dec)
			exp, _ := json.Marshal(g.value)
			if !reflect.DeepEqual(dec, g.value) && !bytes.Equal(got, exp) {
				t.Errorf("decoding %s:\n got %+v\nwant %+v", path, dec, g.value)
			}
		})
	}
}

// The older spellings are read: "canceled" as cancelled and "result" as
// outputs; writing always uses the newer ones.
func TestResult_acceptsOlderSpellings(t *testing.T) {
	var r worker.Result
	if err := json.Unmarshal([]byte(`{"version":"1","assignment_id":"a","status":"canceled","result":{"x":1}}`), &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != worker.StatusCancelled || string(r.Outputs) != `{"x":1}` {
		t.Fatalf("got %+v", r)
	}
	b, _ := json.Marshal(r)
	if !strings.Contains(string(b), `"status":"cancelled"`) || !strings.Contains(string(b), `"outputs":{"x":1}`) {
		t.Fatalf("encoded %s", b)
	}
	if err := json.Unmarshal([]byte(`{"status":"done"}`), &r); err == nil {
		t.Fatal("an unknown status was accepted")
	}
}

// Each validation rule rejects with its reason.
func TestDecodeAssignment_rules(t *testing.T) {
	valid := map[string]any{"version": "1", "assignment_id": "a", "request_id": "r", "tenant_id": "t",
		"executor": map[string]any{"provider_id": "p"}, "job": map[string]any{"type": "greet"}}
	with := func(path string, v any) []byte {
		m := map[string]any{}
		b, _ := json.Marshal(valid)
		_ = json.Unmarshal(b, &m)
		keys := strings.Split(path, ".")
		cur := m
		for _, k := range keys[:len(keys)-1] {
			next, ok := cur[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[k] = next
			}
			cur = next
		}
		if v == nil {
			delete(cur, keys[len(keys)-1])
		} else {
			cur[keys[len(keys)-1]] = v
		}
		b, _ = json.Marshal(m)
		return b
	}
	tests := []struct {
		name   string
		data   []byte
		reason string
		field  string
	}{
		{"not JSON", []byte(`{"version":"1",`), worker.ReasonInvalidJSON, ""},
		{"not an object", []byte(`[1]`), worker.ReasonInvalidJSON, ""},
		{"job not an object", with("job", "greet"), worker.ReasonInvalidJSON, ""},
		{"version 2", with("version", "2"), worker.ReasonUnsupportedVersion, "version"},
		{"version missing", with("version", nil), worker.ReasonUnsupportedVersion, "version"},
		{"version a number", with("version", 1), worker.ReasonInvalidJSON, ""},
		{"no assignment_id", with("assignment_id", nil), worker.ReasonMissingID, "assignment_id"},
		{"empty request_id", with("request_id", ""), worker.ReasonMissingID, "request_id"},
		{"no tenant_id", with("tenant_id", nil), worker.ReasonMissingID, "tenant_id"},
		{"id with a newline", with("assignment_id", "a\nb"), worker.ReasonInvalidID, "assignment_id"},
		{"id too long", with("request_id", strings.Repeat("x", 257)), worker.ReasonInvalidID, "request_id"},
		{"trace_id with a space", with("trace_id", "a b"), worker.ReasonInvalidID, "trace_id"},
		{"no job type", with("job.type", nil), worker.ReasonMissingJobType, "job.type"},
		{"negative deadline", with("options.deadline_ms", -1), worker.ReasonInvalidOptions, "options.deadline_ms"},
		{"too many attempts", with("options.retry.max_attempts", 1000), worker.ReasonInvalidOptions, "options.retry.max_attempts"},
		{"unknown priority", with("options.priority", "urgent"), worker.ReasonInvalidOptions, "options.priority"},
		{"zero job timeout", with("job.timeout_ms", 0), worker.ReasonInvalidOptions, "job.timeout_ms"},
		{"job timeout a string", with("job.timeout_ms", "5s"), worker.ReasonInvalidOptions, "job.timeout_ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := worker.DecodeAssignment(tt.data)
			var verr *worker.ValidationError
			if !errors.As(err, &verr) || !errors.Is(err, worker.ErrInvalidAssignment) {
				t.Fatalf("got %v, want a *ValidationError", err)
			}
			if verr.Reason != tt.reason || verr.Field != tt.field {
				t.Fatalf("got reason %q field %q, want %q %q (%v)", verr.Reason, verr.Field, tt.reason, tt.field, err)
			}
		})
	}
	a, err := worker.DecodeAssignment(with("options.priority", "critical"))
	if err != nil || a.Options.Priority != "critical" || a.Job.Type != "greet" {
		t.Fatalf("a valid assignment: %v %+v", err, a)
	}
	// The ids of an invalid assignment are kept for its rejection.
	a, _ = worker.DecodeAssignment([]byte(`{"assignment_id":"a","request_id":"r","tenant_id":"t","version":"1","job":7}`))
	if a.AssignmentID != "a" || a.RequestID != "r" || a.TenantID != "t" {
		t.Fatalf("ids not kept: %+v", a)
	}
}

// An unconfigured job type matches ErrUnsupportedJobType.
func TestCatalog_unsupportedJobType(t *testing.T) {
	c, _ := catalog(t)
	a, err := worker.DecodeAssignment(wtAssignment("a", "nope"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Step(a)
	var verr *worker.ValidationError
	if !errors.Is(err, worker.ErrUnsupportedJobType) || !errors.As(err, &verr) || verr.Reason != worker.ReasonUnsupportedJobType {
		t.Fatalf("got %v", err)
	}
}

package manifest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
)

func TestParse_schedule(t *testing.T) {
	want := Schedule{
		Priority: "high", TotalDeadline: 2 * time.Minute, QueueTimeout: 30 * time.Second,
		Retry: Retry{MaxAttempts: 5, BackoffInitial: 200 * time.Millisecond, BackoffMultiplier: 1.5,
			BackoffMax: 10 * time.Second, NonRetryable: []abi.Code{abi.CodeHTTPError, abi.CodeResourceUnavailable}},
	}
	for _, tc := range []struct{ name, src string }{
		{"m.hcl", `block "fetch" {
  module         = "fetch.wasm"
  priority       = "high"
  total_deadline = "2m"
  queue_timeout  = "30s"
  retry {
    max_attempts       = 5
    backoff_initial    = "200ms"
    backoff_multiplier = 1.5
    backoff_max        = "10s"
    non_retryable      = ["http_error", 2002]
  }
}
`},
		{"m.json", `{"block": {"fetch": {"module": "fetch.wasm", "priority": "HIGH", "total_deadline": "2m", "queue_timeout": "30s",
  "retry": {"max_attempts": 5, "backoff_initial": "200ms", "backoff_multiplier": 1.5, "backoff_max": "10s",
            "non_retryable": ["http_error", "resource_unavailable"]}}}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(tc.src), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m.Schedule, want) {
				t.Fatalf("schedule %+v, want %+v", m.Schedule, want)
			}
		})
	}
	m, err := Parse([]byte(`block "m" { module = "m.wasm" }`), "m.hcl")
	if err != nil || !reflect.DeepEqual(m.Schedule, Schedule{}) {
		t.Fatalf("unset schedule: %+v %v", m.Schedule, err)
	}
}

func TestParse_scheduleInvalid(t *testing.T) {
	tests := []struct {
		name, src string
		want      []pos
	}{
		{"priority", "block \"m\" {\n  module = \"m\"\n  priority = \"urgent\"\n}\n", []pos{{3, 14}}},
		{"total deadline", "block \"m\" {\n  module = \"m\"\n  total_deadline = \"soon\"\n}\n", []pos{{3, 20}}},
		{"queue timeout zero", "block \"m\" {\n  module = \"m\"\n  queue_timeout = \"0s\"\n}\n", []pos{{3, 19}}},
		{"max attempts", "block \"m\" {\n  module = \"m\"\n  retry {\n    max_attempts = 0\n  }\n}\n", []pos{{4, 20}}},
		{"multiplier", "block \"m\" {\n  module = \"m\"\n  retry {\n    backoff_multiplier = 0.5\n  }\n}\n", []pos{{4, 26}}},
		{"max below initial", "block \"m\" {\n  module = \"m\"\n  retry {\n    backoff_initial = \"2s\"\n    backoff_max = \"1s\"\n  }\n}\n", []pos{{5, 19}}},
		{"unknown code", "block \"m\" {\n  module = \"m\"\n  retry {\n    non_retryable = [\"teapot\"]\n  }\n}\n", []pos{{4, 22}}},
		{"unknown retry attribute", "block \"m\" {\n  module = \"m\"\n  retry {\n    attempts = 3\n  }\n}\n", []pos{{4, 5}}},
		{"two retry blocks", "block \"m\" {\n  module = \"m\"\n  retry {}\n  retry {}\n}\n", []pos{{4, 3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "m.hcl")
			var me *Error
			if !errors.As(err, &me) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v", err)
			}
			var got []pos
			for _, d := range me.Diagnostics {
				got = append(got, pos{d.Line, d.Column})
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("positions %v, want %v: %v", got, tc.want, err)
			}
		})
	}
}

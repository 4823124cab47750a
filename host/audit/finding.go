package audit

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Severity ranks findings. The zero value is Info.
type Severity int

// Severities, least to most serious.
const (
	// Info: worth knowing; nothing to change.
	Info Severity = iota
	// Low: a grant wider than it needs to be, or a limit far above need.
	Low
	// Medium: something a reviewer must decide on: private networks, no
	// pin or signature, a grant the module cannot use.
	Medium
	// High: the block can reach what a reviewer would not expect — every
	// .com host, every special address, the host's system folders.
	High
)

var severityNames = []string{"info", "low", "medium", "high"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalText writes the severity's name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity reads "info", "low", "medium" or "high", in any case.
func ParseSeverity(name string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(name, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q: want info, low, medium or high", ErrSeverity, name)
}

// Rule is one kind of finding.
type Rule struct {
	// ID is stable: it keeps its meaning in every later version.
	ID string
	// Name is a short slug, such as "http-wildcard-public-suffix".
	Name string
	// Severity is the rule's severity.
	Severity Severity
	// Summary says what the rule finds.
	Summary string
}

// Finding is one thing Lint found.
type Finding struct {
	Rule
	// Manifest is the manifest's path.
	Manifest string
	// Where is the part of the manifest, such as `http grant "api"`, or
	// "block" for the manifest as a whole.
	Where string
	// Message says what was found and what to do, for people.
	Message string
}

// String formats a finding on one line:
// "fetch.hcl: high BH100 http grant "all": …".
func (f Finding) String() string {
	return fmt.Sprintf("%s: %s %s %s: %s", f.Manifest, f.Severity, f.ID, f.Where, f.Message)
}

// MarshalJSON writes a finding as one flat object.
func (f Finding) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		ID       string   `json:"id"`
		Name     string   `json:"name"`
		Severity Severity `json:"severity"`
		Manifest string   `json:"manifest"`
		Where    string   `json:"where"`
		Message  string   `json:"message"`
	}{f.ID, f.Name, f.Severity, f.Manifest, f.Where, f.Message})
}

// Worst returns the highest severity among findings, and false when there
// are none.
func Worst(findings []Finding) (Severity, bool) {
	worst, any := Info, false
	for _, f := range findings {
		if !any || f.Severity > worst {
			worst, any = f.Severity, true
		}
	}
	return worst, any
}

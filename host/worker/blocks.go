package worker

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/httpcap"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/plugins"
)

// Blocks decides what an assignment runs. It is the one place where a
// job type becomes a block, its grants and its limits, and it draws them
// from the operator's configuration only: an assignment chooses a type
// among those configured and supplies the step's input, never a module,
// a grant or a limit.
type Blocks interface {
	// Step returns the step that runs a's job. An error matching
	// ErrUnsupportedJobType says the type is none of the configured
	// blocks; a *ValidationError with ReasonInvalidJob says the job's
	// fields cannot be the block's input. Any other error is the worker's
	// own trouble: the assignment is handed back for another try.
	Step(a *Assignment) (Step, error)
}

// Step is what the worker submits to the executor for one assignment.
type Step struct {
	// Request is the executor request; the worker fills its ids, tenant,
	// deadlines, attempts and priority from the assignment.
	Request executor.Request
	// Output, when set, turns the block's result into the contract's
	// output object; nil passes the output through.
	Output func(res *abi.StepResult) json.RawMessage
}

// Block is one configured job type.
type Block struct {
	// Runner runs the block: a *host.Block or a *host.NativeBlock.
	Runner host.Runner
	// Args, Grants and Limits are the step's, from the operator.
	Args   []string
	Grants host.Grants
	Limits host.Limits
	// Pool, Priority, Retry and TotalDeadline are the block's schedule;
	// an assignment's options override Priority, Retry.MaxAttempts and
	// TotalDeadline.
	Pool          string
	Priority      executor.Priority
	Retry         executor.RetryPolicy
	TotalDeadline time.Duration
	// Dependency names what the block depends on, for its circuit breaker;
	// a built-in's adapter may derive it from the job instead.
	Dependency string

	// adapt turns the job into the step's input, extra args and
	// dependency; nil passes the job's fields as a JSON object.
	adapt adaptFunc
	// output rewrites the block's result into the contract's output.
	output outputFunc
}

// Catalog is a Blocks made of configured job types. The zero value has
// none; With adds one and returns a new Catalog.
type Catalog struct {
	m map[string]Block
}

// With returns a catalog that also runs jobType with b.
func (c Catalog) With(jobType string, b Block) Catalog {
	m := maps.Clone(c.m)
	if m == nil {
		m = map[string]Block{}
	}
	m[jobType] = b
	return Catalog{m: m}
}

// Types lists the catalog's job types, sorted.
func (c Catalog) Types() []string { return slices.Sorted(maps.Keys(c.m)) }

// Step implements Blocks.
func (c Catalog) Step(a *Assignment) (Step, error) {
	b, ok := c.m[a.Job.Type]
	if !ok {
		return Step{}, &ValidationError{Reason: ReasonUnsupportedJobType, Field: "job.type",
			Message: fmt.Sprintf("job.type %q is not a block this worker runs (it runs %v)", a.Job.Type, c.Types())}
	}
	input, args, dep := []byte(a.Job.Input()), b.Args, b.Dependency
	if b.adapt != nil {
		in, extra, d, err := b.adapt(a.Job)
		if err != nil {
			return Step{}, &ValidationError{Reason: ReasonInvalidJob, Field: "job", Message: err.Error()}
		}
		input, args = in, append(slices.Clip(b.Args), extra...)
		if d != "" {
			dep = d
		}
	}
	st := Step{Request: executor.Request{
		Runner: b.Runner,
		Step:   host.Step{Input: input, Args: args, Grants: b.Grants, Limits: b.Limits},
		Pool:   b.Pool, Priority: b.Priority, Retry: b.Retry, TotalDeadline: b.TotalDeadline, Dependency: dep,
	}}
	req := &st.Request
	if t, ok := a.Job.Fields["timeout_ms"]; ok {
		req.Step.Limits.Timeout, _ = positiveMS(t) // validated
	}
	if o := a.Options; o != nil {
		if o.DeadlineMS > 0 {
			req.TotalDeadline = time.Duration(o.DeadlineMS) * time.Millisecond
		}
		if o.Retry != nil && o.Retry.MaxAttempts > 0 {
			req.Retry.MaxAttempts = o.Retry.MaxAttempts
		}
		if o.Priority != "" {
			req.Priority, _ = executor.ParsePriority(o.Priority) // validated
		}
	}
	if b.output != nil {
		job := a.Job
		st.Output = func(res *abi.StepResult) json.RawMessage { return b.output(job, res) }
	}
	return st, nil
}

// Builtin returns the built-in block registered as name (or its alias
// fs.put or fs.get) bound to rt with grants, translating the wire
// contract's job fields and outputs for http.request, fs.blob_put and
// fs.blob_get. It reports false when no such built-in exists.
func Builtin(rt *host.Runtime, name string, grants host.Grants) (Block, bool) {
	name = BuiltinName(name)
	p, ok := plugins.Lookup(name)
	if !ok {
		return Block{}, false
	}
	b := Block{Runner: rt.Native(p.Name, p.Run), Grants: grants}
	b.adapt, b.output, b.Dependency = builtinAdapter(name)
	return b, true
}

// BuiltinName returns the registered name of a built-in job type:
// fs.blob_put for fs.put, fs.blob_get for fs.get, else name.
func BuiltinName(name string) string {
	switch name {
	case "fs.put":
		return "fs.blob_put"
	case "fs.get":
		return "fs.blob_get"
	}
	return name
}

type adaptFunc func(j Job) (input []byte, args []string, dep string, err error)
type outputFunc func(j Job, res *abi.StepResult) json.RawMessage

// builtinAdapter returns how the contract's job and output translate for
// a built-in; nils for any other block.
func builtinAdapter(name string) (adaptFunc, outputFunc, string) {
	switch name {
	case "http.request":
		return httpInput, httpOutput, ""
	case "fs.blob_put":
		return putInput, putOutput, "fs"
	case "fs.blob_get":
		return getInput, getOutput, "fs"
	case "sql.query", "sql.exec":
		return sqlInput, nil, ""
	}
	return nil, nil, ""
}

// sqlFields are the job fields sql.query and sql.exec take.
var sqlFields = []string{"database", "connection_string", "query", "statement", "parameters"}

// sqlInput passes the statement's fields on; the dependency is the
// database the job names (its breaker and retry budget), sql:NAME.
func sqlInput(j Job) ([]byte, []string, string, error) {
	in := map[string]json.RawMessage{}
	for _, f := range sqlFields {
		if v, ok := j.Fields[f]; ok {
			in[f] = v
		}
	}
	var name string
	for _, f := range []string{"database", "connection_string"} {
		if v, ok := in[f]; ok && name == "" {
			if err := json.Unmarshal(v, &name); err != nil {
				return nil, nil, "", fmt.Errorf("job.%s must be a string", f)
			}
		}
	}
	dep := ""
	if sqlcap.ValidName(name) == nil {
		// Never a connection string: it may hold a password, and
		// sql.query refuses it anyway.
		dep = sqlcap.Dependency(name)
	}
	b, _ := json.Marshal(in)
	return b, nil, dep, nil
}

// httpFields are the job fields http.request takes; timeout_ms is the
// attempt timeout, read by the worker.
var httpFields = []string{"method", "url", "headers", "body", "body_base64", "timeouts", "max_response_body"}

func httpInput(j Job) ([]byte, []string, string, error) {
	in := map[string]json.RawMessage{}
	for _, f := range httpFields {
		if v, ok := j.Fields[f]; ok {
			in[f] = v
		}
	}
	if _, ok := j.Fields["payload_ref"]; ok {
		return nil, nil, "", fmt.Errorf("job.payload_ref is not supported: give the request inline")
	}
	var u string
	if err := json.Unmarshal(j.Fields["url"], &u); err != nil || u == "" {
		return nil, nil, "", fmt.Errorf("job.url must be a non-empty string")
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return nil, nil, "", fmt.Errorf("job.url %q is not an absolute URL", u)
	}
	// The name the HTTP capability reports the origin by, so that the
	// breaker the job names is the one its requests report to.
	dep := ""
	if _, t, err := httpcap.ParseURL(u); err == nil {
		dep = httpcap.Dependency(t)
	}
	b, _ := json.Marshal(in)
	return b, nil, dep, nil
}

// httpOutput adds the contract's status_code beside the block's status.
func httpOutput(_ Job, res *abi.StepResult) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(res.Output, &m) != nil {
		return res.Output
	}
	if s, ok := m["status"]; ok {
		m["status_code"] = s
	}
	b, _ := json.Marshal(m)
	return b
}

// blobJob is the contract's fs.blob_put and fs.blob_get job.
type blobJob struct {
	Path          string  `json:"path"`
	Key           string  `json:"key"`
	Dir           string  `json:"dir"`
	Content       *string `json:"content"`
	ContentBase64 []byte  `json:"content_base64"`
	ContentType   string  `json:"content_type"`
}

func readBlobJob(j Job) (blobJob, error) {
	var bj blobJob
	if err := json.Unmarshal(j.Input(), &bj); err != nil {
		return bj, fmt.Errorf("job fields: %v", err)
	}
	return bj, nil
}

func blobArgs(bj blobJob) []string {
	var args []string
	if bj.Dir != "" {
		args = append(args, "--dir", bj.Dir)
	}
	if bj.Path != "" {
		args = append(args, "--name", bj.Path)
	}
	return args
}

func putInput(j Job) ([]byte, []string, string, error) {
	bj, err := readBlobJob(j)
	if err != nil {
		return nil, nil, "", err
	}
	var content []byte
	switch {
	case bj.Content != nil && bj.ContentBase64 != nil:
		return nil, nil, "", fmt.Errorf("give one of job.content and job.content_base64")
	case bj.Content != nil:
		content = []byte(*bj.Content)
	case bj.ContentBase64 != nil:
		content = bj.ContentBase64
	default:
		return nil, nil, "", fmt.Errorf("job.content is missing")
	}
	return content, blobArgs(bj), "", nil
}

func putOutput(j Job, res *abi.StepResult) json.RawMessage {
	var out struct {
		Key     string `json:"key"`
		Path    string `json:"path"`
		Size    int64  `json:"size"`
		SHA256  string `json:"sha256"`
		Created bool   `json:"created"`
	}
	if json.Unmarshal(res.Output, &out) != nil {
		return res.Output
	}
	bj, _ := readBlobJob(j)
	ct := bj.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	b, _ := json.Marshal(map[string]any{"path": out.Path, "size_bytes": out.Size, "content_type": ct,
		"key": out.Key, "sha256": out.SHA256, "created": out.Created})
	return b
}

func getInput(j Job) ([]byte, []string, string, error) {
	bj, err := readBlobJob(j)
	if err != nil {
		return nil, nil, "", err
	}
	if (bj.Path == "") == (bj.Key == "") {
		return nil, nil, "", fmt.Errorf("give one of job.path and job.key")
	}
	args := blobArgs(bj)
	if bj.Key != "" {
		args = append(args, "--key", bj.Key)
	}
	if bj.Dir == "" && len(args) == 0 {
		return nil, nil, "", fmt.Errorf("job.path is missing")
	}
	return nil, args, "", nil
}

func getOutput(j Job, res *abi.StepResult) json.RawMessage {
	if res.Status != abi.StatusSuccess {
		return nil
	}
	var content []byte
	switch {
	case res.OutputText != nil:
		content = []byte(*res.OutputText)
	case res.OutputBase64 != nil:
		content = res.OutputBase64
	default:
		content = res.Output
	}
	bj, _ := readBlobJob(j)
	ct := bj.ContentType
	if ct == "" {
		ct = http.DetectContentType(content)
	}
	path := bj.Path
	if path == "" {
		path = bj.Key
	}
	m := map[string]any{"path": path, "size_bytes": len(content), "content_type": ct}
	if utf8.Valid(content) {
		m["content"] = string(content)
	} else {
		m["content_base64"] = content
	}
	b, _ := json.Marshal(m)
	return b
}

package executor

import (
	"time"

	"github.com/blockhost/blockhost/abi"
)

// Attempt is one finished attempt, as a Classifier sees it.
type Attempt struct {
	// Request is the step's request, with its policy resolved.
	Request *Request
	// N counts attempts from 1.
	N int
	// Result is what the runner returned.
	Result *abi.StepResult
	// TimedOut reports that the attempt ran out its own timeout (the
	// step's Limits.Timeout) while the step itself was still live.
	TimedOut bool
	// Dependency is the dependency that one of the attempt's capability
	// operations last found unhealthy (a retryable failure, such as a
	// refused connection to a granted database, "sql:orders") and that
	// has not answered since, as the capabilities reported it through
	// capability.ReportDependency; empty when none did.
	Dependency string
}

// Verdict is what the executor needs to know about one attempt.
type Verdict struct {
	// Retryable: trying again may succeed. The executor still never
	// retries the codes it refuses to (see RetryPolicy.NonRetryable), a
	// success, a cancellation or a timeout.
	Retryable bool
	// Unhealthy: the failure says the dependency is unhealthy, so it
	// counts against the dependency's circuit breaker. A failure that is
	// not unhealthy (a 4xx, an invalid input) counts as the dependency
	// answering; a cancellation counts as nothing.
	Unhealthy bool
	// Dependency, when set, names the dependency the failure concerns,
	// for results that know it better than the request did (an HTTP
	// capability naming host:port). Empty means the request's.
	Dependency string
	// RetryAfter, when positive, is the wait the dependency asked for.
	RetryAfter time.Duration
}

// A Classifier turns an attempt's result into a Verdict. It is the plug-in
// point for capabilities whose errors carry more than a code and a class:
// wrap DefaultClassifier and refine its verdict.
type Classifier interface {
	Classify(a Attempt) Verdict
}

// ClassifierFunc adapts a function to Classifier.
type ClassifierFunc func(a Attempt) Verdict

// Classify calls f.
func (f ClassifierFunc) Classify(a Attempt) Verdict { return f(a) }

// DefaultClassifier trusts the block's classification, the contract of
// docs/abi.md §6:
//
//   - an error classed retryable is retryable and says the dependency is
//     unhealthy (network errors, connect timeouts, 5xx, 429, 408, a
//     dependency that is down);
//   - an error classed permanent is neither (a 4xx, an invalid input, a
//     trap): the dependency answered;
//   - an attempt that ran out its own timeout is not retried — the block's
//     computation is too slow, and another try will be too — but counts as
//     unhealthy, since a dependency that does not answer looks like that;
//   - a cancellation is neither;
//   - an unhealthy failure of an attempt whose capability operation last
//     found a dependency unhealthy (Attempt.Dependency) concerns that
//     dependency: a block's retryable error after a refused connection to
//     database orders counts against sql:orders;
//   - Error.RetryAfterMS becomes RetryAfter.
func DefaultClassifier() Classifier { return ClassifierFunc(defaultClassify) }

func defaultClassify(a Attempt) Verdict {
	res := a.Result
	switch res.Status {
	case abi.StatusError:
		if res.Error == nil {
			return Verdict{}
		}
		v := Verdict{Retryable: res.Error.Class == abi.ClassRetryable}
		v.Unhealthy = v.Retryable
		v.RetryAfter, _ = res.Error.RetryAfter()
		if v.Unhealthy {
			v.Dependency = a.Dependency
		}
		return v
	case abi.StatusTimeout:
		v := Verdict{Unhealthy: a.TimedOut}
		if v.Unhealthy {
			v.Dependency = a.Dependency
		}
		return v
	}
	return Verdict{}
}

// neverRetried are the codes no policy retries: the issue's "permission
// denied, quota exceeded, cancellation".
var neverRetried = [...]abi.Code{abi.CodePermissionDenied, abi.CodeQuotaExceeded, abi.CodeCancelledByUser, abi.CodeCancelledByTimeout}

// mayRetry applies the executor's own rules over the classifier's verdict.
func mayRetry(res *abi.StepResult, v Verdict, p *RetryPolicy) bool {
	if !v.Retryable || res.Status != abi.StatusError || res.Error == nil {
		return false
	}
	for _, c := range neverRetried {
		if res.Error.Code == c {
			return false
		}
	}
	for _, c := range p.NonRetryable {
		if res.Error.Code == c {
			return false
		}
	}
	return true
}

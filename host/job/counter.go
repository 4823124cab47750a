package job

import (
	"maps"
	"sync"

	"github.com/blockhost/blockhost/abi"
)

// Counts are the outcomes of a set of steps.
type Counts struct {
	// Steps is how many results were counted.
	Steps int
	// ByStatus and ByCode count results by status and by error code.
	ByStatus map[abi.Status]int
	ByCode   map[abi.Code]int
	// Attempts and Retries sum the results' attempts and retries.
	Attempts, Retries int
}

// Counter counts results. It is safe for concurrent use; the zero value is
// ready.
type Counter struct {
	mu sync.Mutex
	c  Counts
}

// Add counts one result.
func (c *Counter) Add(res *abi.StepResult) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c.ByStatus == nil {
		c.c.ByStatus, c.c.ByCode = map[abi.Status]int{}, map[abi.Code]int{}
	}
	c.c.Steps++
	c.c.ByStatus[res.Status]++
	if res.Error != nil {
		c.c.ByCode[res.Error.Code]++
	}
	c.c.Attempts += res.Attempts
	c.c.Retries += res.RetriesUsed
}

// Counts returns a copy of the counts so far.
func (c *Counter) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.c
	out.ByStatus, out.ByCode = maps.Clone(c.c.ByStatus), maps.Clone(c.c.ByCode)
	if out.ByStatus == nil {
		out.ByStatus, out.ByCode = map[abi.Status]int{}, map[abi.Code]int{}
	}
	return out
}

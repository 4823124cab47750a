package executor

import (
	"math"
	"sync"
)

// budgets holds the retry budget of every dependency: at any moment at
// most max(MinRetries, Ratio × active) of a dependency's steps may be
// retrying, where active counts its unfinished steps and a step is
// retrying from the decision to retry until that retry attempt ends.
// Entries exist only while a dependency has active steps.
type budgets struct {
	cfg BudgetConfig

	mu sync.Mutex
	m  map[string]*budget
}

type budget struct {
	active, retrying int
}

func newBudgets(cfg BudgetConfig) *budgets {
	return &budgets{cfg: cfg, m: map[string]*budget{}}
}

// start counts a step as active on dep.
func (bs *budgets) start(dep string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b, ok := bs.m[dep]
	if !ok {
		b = &budget{}
		bs.m[dep] = b
	}
	b.active++
}

// end counts a step off dep, with the retry it held, if any.
func (bs *budgets) end(dep string, retrying bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[dep]
	b.active--
	if retrying {
		b.retrying--
	}
	if b.active == 0 {
		delete(bs.m, dep)
	}
}

// limit is how many of active steps may retry at once.
func (bs *budgets) limit(active int) int {
	return max(bs.cfg.MinRetries, int(math.Floor(bs.cfg.Ratio*float64(active))))
}

// acquire takes a retry from dep's budget, reporting whether there was
// one, and the budget's state after the decision (for tests and logs).
func (bs *budgets) acquire(dep string) (ok bool, retrying, limit int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	b := bs.m[dep]
	limit = bs.limit(b.active)
	if b.retrying+1 > limit {
		return false, b.retrying, limit
	}
	b.retrying++
	return true, b.retrying, limit
}

// release returns a retry to dep's budget once the retry attempt ended.
func (bs *budgets) release(dep string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.m[dep].retrying--
}

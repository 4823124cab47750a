package sqlquery_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/host/executor"
	"github.com/blockhost/blockhost/host/job"
	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/plugins/sqlquery"
)

// BenchmarkSelectByKey is `make bench`'s SQL line: sql.query selecting one
// row by primary key, on SQLite and on PostgreSQL (a local server started
// by the benchmark), one step at a time and four at once, as whole steps:
// each is a request resolved and run by the job layer, through the
// executor (queue, retry policy, breaker and budget of sql:shop, metrics)
// and the runtime's built-in block (limits, result), exactly as
// `blockhost batch` runs a line. It reports steps/s and the p50 and p99
// latency of a step. docs/benchmarks.md records the figures.
func BenchmarkSelectByKey(b *testing.B) {
	for _, d := range drivers {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/c%d", d, conc), func(b *testing.B) {
				flag := "shop=" + string(d) + ":" + databasesTB(b, d, sqlcap.ModeReadOnly).Grants()[0].DSN.Reveal()
				svc, err := job.New(job.NewConfig().
					WithOverrides(job.Settings{CapFlags: map[string][]string{sqlcap.Name: {flag}}}).
					WithPool(executor.PoolConfig{Concurrency: conc}))
				if err != nil {
					b.Fatal(err)
				}
				defer svc.Close(context.Background())
				ctx := context.Background()
				reqs := make([]job.Request, 3)
				for i := range reqs {
					reqs[i] = job.Request{Block: sqlquery.QueryName,
						Input: fmt.Appendf(nil, `{"database":"shop","query":"SELECT id, customer, total FROM orders WHERE id = $1","parameters":[%d]}`, i+1)}
				}
				measure(b, conc, func(i int) error {
					xr, err := svc.Resolve(ctx, reqs[i%3])
					if err != nil {
						return err
					}
					if res := svc.Start(ctx, xr).Result(); res.Status != abi.StatusSuccess {
						return fmt.Errorf("%s: %+v", res.Status, res.Error)
					}
					return nil
				})
			})
		}
	}
}

// BenchmarkSelectByKeyBody is the same statement through the block's body
// alone (sqlquery.Query on the granted databases), without the executor
// and the runtime: side by side with BenchmarkSelectByKey it shows what
// a whole step adds.
func BenchmarkSelectByKeyBody(b *testing.B) {
	for _, d := range drivers {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/c%d", d, conc), func(b *testing.B) {
				set := databasesTB(b, d, sqlcap.ModeReadOnly)
				ctx := context.Background()
				inputs := make([][]byte, 3)
				for i := range inputs {
					inputs[i] = fmt.Appendf(nil, `{"database":"shop","query":"SELECT id, customer, total FROM orders WHERE id = $1","parameters":[%d]}`, i+1)
				}
				measure(b, conc, func(i int) error {
					_, err := sqlquery.Query(ctx, set, inputs[i%3])
					return err
				})
			})
		}
	}
}

// measure runs step b.N times on conc goroutines, after one warm-up call
// (it opens the pool), and reports steps/s, p50-ms and p99-ms.
func measure(b *testing.B, conc int, step func(i int) error) {
	if err := step(0); err != nil {
		b.Fatal(err)
	}
	var mu sync.Mutex
	var lat []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range conc {
		wg.Go(func() {
			local := make([]time.Duration, 0, b.N/conc+1)
			for i := range next {
				t0 := time.Now()
				if err := step(i); err != nil {
					b.Error(err)
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	for i := 0; i < b.N; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "steps/s")
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
}

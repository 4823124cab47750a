package sqlquery_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blockhost/blockhost/host/sqlcap"
	"github.com/blockhost/blockhost/plugins/sqlquery"
)

// BenchmarkSelectByKey is `make bench`'s SQL line: sql.query selecting one
// row by primary key, on SQLite and on PostgreSQL (a local server started
// by the benchmark), one step at a time and four at once. It reports
// steps/s and the p50 and p99 latency of a step. docs/benchmarks.md
// records the figures.
func BenchmarkSelectByKey(b *testing.B) {
	for _, d := range drivers {
		for _, conc := range []int{1, 4} {
			b.Run(fmt.Sprintf("%s/c%d", d, conc), func(b *testing.B) {
				set := benchDatabases(b, d)
				ctx := context.Background()
				inputs := make([][]byte, 3)
				for i := range inputs {
					inputs[i] = fmt.Appendf(nil, `{"database":"shop","query":"SELECT id, customer, total FROM orders WHERE id = $1","parameters":[%d]}`, i+1)
				}
				// Warm the pool.
				if _, err := sqlquery.Query(ctx, set, inputs[0]); err != nil {
					b.Fatal(err)
				}
				var mu sync.Mutex
				var lat []time.Duration
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				next := make(chan int)
				for range conc {
					wg.Go(func() {
						local := make([]time.Duration, 0, b.N/conc+1)
						for i := range next {
							t0 := time.Now()
							if _, err := sqlquery.Query(ctx, set, inputs[i%3]); err != nil {
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
			})
		}
	}
}

// benchDatabases is databases for a benchmark.
func benchDatabases(b *testing.B, d sqlcap.Driver) *sqlcap.Set {
	return databasesTB(b, d, sqlcap.ModeReadOnly)
}

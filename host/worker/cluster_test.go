package worker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/blockhost/blockhost/host/worker"
	wt "github.com/blockhost/blockhost/host/worker/workertest"
)

// A 3-node cluster on loopback, streams with 3 replicas: the node that
// leads the assignment stream is stopped mid-run, and every assignment
// still gets its one result.
func TestCluster_nodeStoppedMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	// JetStream in a cluster needs every node's routes at start: free
	// loopback ports are picked first.
	var routes []string
	for range 3 {
		routes = append(routes, "nats-route://"+wt.FreeAddr(t))
	}
	nodes := make([]*worker.Server, 3)
	var urls []string
	errs := make(chan error, 3)
	for i := range 3 {
		go func() {
			var err error
			nodes[i], err = worker.StartServer(worker.ServerConfig{StoreDir: t.TempDir(), Listen: "127.0.0.1:0",
				Name: fmt.Sprintf("n%d", i+1), ClusterName: "blockhost-test",
				ClusterListen: strings.TrimPrefix(routes[i], "nats-route://"), Routes: routes})
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		t.Cleanup(n.Shutdown)
		urls = append(urls, n.ClientURL())
	}
	nc := wt.Connect(t, strings.Join(urls, ","))
	js := wt.JetStream(t, nc)
	streams := worker.Streams{Replicas: 3, AckWait: 2 * time.Second}
	// JetStream elects its meta leader after the routes form.
	wt.Eventually(t, 60*time.Second, "the cluster's JetStream is ready", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := worker.EnsureStreams(ctx, js, streams)
		return err == nil
	})
	c, _ := catalog(t)
	startWorker(t, nc, newExecutor(t, 8, 0), c, worker.NewConfig().WithStreams(streams))
	ids := wt.Publish(t, js, "cl-", 300, "sleep", map[string]any{"ms": 10})

	wt.Eventually(t, 30*time.Second, "some results", func() bool { return resultCount(js) >= 40 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, worker.StreamAssign)
	if err != nil {
		t.Fatal(err)
	}
	leader := st.CachedInfo().Cluster.Leader
	for _, n := range nodes {
		if n.NATS().Name() == leader {
			n.Shutdown()
			t.Logf("stopped %s, the leader of %s, after %d results", leader, worker.StreamAssign, resultCount(js))
		}
	}
	wt.Eventually(t, 60*time.Second, "300 results", func() bool { return resultCount(js) >= 300 })
	got := wt.Results(t, js, len(ids), 60*time.Second)
	for _, id := range ids {
		if r, ok := got[id]; !ok || r.Status != worker.StatusSuccess {
			t.Fatalf("%s: %+v", id, r)
		}
	}
}

// resultCount is how many results the stream holds, or -1 while the
// cluster cannot say.
func resultCount(js jetstream.JetStream) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, worker.StreamResult)
	if err != nil {
		return -1
	}
	info, err := s.Info(ctx)
	if err != nil {
		return -1
	}
	return int(info.State.Msgs)
}

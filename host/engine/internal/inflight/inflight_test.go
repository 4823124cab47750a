package inflight

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGate_idleClose: closing an idle gate frees at once, exactly once,
// and no one enters afterwards.
func TestGate_idleClose(t *testing.T) {
	var frees atomic.Int32
	var g Gate
	g.Init(func() error { frees.Add(1); return nil })
	if !g.Enter() {
		t.Fatal("Enter on an open gate refused")
	}
	g.Leave()
	if frees.Load() != 0 {
		t.Fatal("freed before Close")
	}
	g.Close()
	if frees.Load() != 1 {
		t.Fatalf("Close of an idle gate freed %d times, want 1", frees.Load())
	}
	if g.Enter() {
		t.Fatal("Enter after Close succeeded")
	}
	g.Close()
	if err := g.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if frees.Load() != 1 {
		t.Fatalf("freed %d times, want 1", frees.Load())
	}
}

// TestGate_lastLeaveFrees: with a user in flight, Close frees nothing; the
// user's Leave does, and Wait returns free's error.
func TestGate_lastLeaveFrees(t *testing.T) {
	errFree := errors.New("free failed")
	var frees atomic.Int32
	var g Gate
	g.Init(func() error { frees.Add(1); return errFree })
	if !g.Enter() {
		t.Fatal("Enter refused")
	}
	g.Close()
	if frees.Load() != 0 {
		t.Fatal("Close freed under a user")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := g.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with a user in flight: %v, want the context's deadline", err)
	}
	if g.InFlight() != 1 {
		t.Fatalf("%d in flight, want 1", g.InFlight())
	}
	g.Leave()
	if frees.Load() != 1 {
		t.Fatalf("last Leave freed %d times, want 1", frees.Load())
	}
	if err := g.Wait(context.Background()); !errors.Is(err, errFree) {
		t.Fatalf("Wait: %v, want free's error", err)
	}
}

// TestGate_concurrent: users entering and leaving while the gate closes
// never see the resource freed, and it is freed exactly once.
func TestGate_concurrent(t *testing.T) {
	for range 50 {
		var freed atomic.Bool
		var frees atomic.Int32
		var g Gate
		g.Init(func() error { freed.Store(true); frees.Add(1); return nil })
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 200 {
					if !g.Enter() {
						return
					}
					if freed.Load() {
						t.Error("a user saw the resource freed")
					}
					g.Leave()
				}
			})
		}
		g.Close()
		wg.Wait()
		if err := g.Wait(context.Background()); err != nil {
			t.Fatal(err)
		}
		if frees.Load() != 1 {
			t.Fatalf("freed %d times, want 1", frees.Load())
		}
	}
}

// TestSet: closing a Set closes its members; the Set is freed after the
// last member, and a member added once it is closing is refused.
func TestSet(t *testing.T) {
	var order []string
	var s Set
	s.Init(func() error { order = append(order, "set"); return nil })
	var m Gate
	m.Init(func() error { order = append(order, "member"); s.Remove(&m); return nil })
	if !s.Enter() || !s.Add(&m) {
		t.Fatal("an open Set refused a member")
	}
	if !m.Enter() {
		t.Fatal("member refused a user")
	}
	s.Close()
	if len(order) != 0 || s.Len() != 1 {
		t.Fatalf("freed %v with a member's user in flight", order)
	}
	if m.Enter() {
		t.Fatal("Set.Close left its member open")
	}
	m.Leave()
	if len(order) != 2 || order[0] != "member" || order[1] != "set" {
		t.Fatalf("freed in the order %v, want member, set", order)
	}
	var late Gate
	if s.Add(&late) {
		t.Fatal("a closed Set took a member")
	}
}

// Package inflight keeps what runs use alive until the last of them has
// ended. A Gate counts the users of a resource (a compiled module's runs,
// an engine's modules); once it is closed no new user enters, and the
// resource is freed exactly once, by whoever leaves it idle: Close itself
// when nothing is in flight, else the last user to Leave. Close never
// frees anything under a user, and a caller of Wait can bound how long it
// waits without leaking the resource: what is still in use is freed when
// it is no longer.
//
// Enter and Leave are one atomic addition each and allocate nothing, so a
// Gate may guard every step of a hot path.
package inflight

import (
	"context"
	"sync"
	"sync/atomic"
)

// closedBit marks a closed gate in its count; the count proper never comes
// near it.
const closedBit = int64(1) << 62

// Gate counts the users of a resource. The zero Gate is not usable: make
// one with Init.
type Gate struct {
	// n is the number of users in flight, plus closedBit once closed.
	n    atomic.Int64
	once sync.Once
	free func() error
	err  error
	// freed is closed once free has returned.
	freed chan struct{}
}

// Init readies g to call free once it is closed and idle. free's error is
// what Wait returns.
func (g *Gate) Init(free func() error) {
	g.free = free
	g.freed = make(chan struct{})
}

// Enter counts a user in. It returns false, counting nothing, once the
// gate is closed; the caller must then not touch the resource. A true
// Enter must be matched by exactly one Leave.
func (g *Gate) Enter() bool {
	if g.n.Add(1)&closedBit != 0 {
		g.Leave()
		return false
	}
	return true
}

// Leave counts a user out; the last one out of a closed gate frees the
// resource, before Leave returns.
func (g *Gate) Leave() {
	if g.n.Add(-1) == closedBit {
		g.release()
	}
}

// Close closes the gate: no Enter succeeds from now on. When nothing is in
// flight, the resource is freed before Close returns; otherwise the last
// user's Leave frees it. Close does not wait: Wait does. Closing twice is
// harmless.
func (g *Gate) Close() {
	if g.n.Or(closedBit) == 0 {
		g.release()
	}
}

// Closed reports whether the gate has been closed.
func (g *Gate) Closed() bool { return g.n.Load()&closedBit != 0 }

// InFlight is the number of users in flight.
func (g *Gate) InFlight() int64 { return g.n.Load() &^ closedBit }

// Wait waits until a closed gate's resource is freed and returns free's
// error, or until ctx ends: it then returns ctx's cause, and the resource
// is still freed when its last user leaves.
func (g *Gate) Wait(ctx context.Context) error {
	select {
	case <-g.freed:
		return g.err
	default:
	}
	select {
	case <-g.freed:
		return g.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Freed is closed once the resource has been freed.
func (g *Gate) Freed() <-chan struct{} { return g.freed }

func (g *Gate) release() {
	g.once.Do(func() {
		g.err = g.free()
		close(g.freed)
	})
}

// Set is a Gate whose users are resources with Gates of their own, such
// as an engine and the modules it compiled: closing the Set closes every
// member, and the Set's resource is freed once the last member is.
type Set struct {
	Gate
	mu      sync.Mutex
	closing bool
	members map[*Gate]struct{}
}

// Add makes g a member; the caller has entered the Set for it, and g's
// free must end with Remove(g). Add returns false once the Set is
// closing, when Close may not have seen g: the caller closes g itself.
func (s *Set) Add(g *Gate) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if s.members == nil {
		s.members = map[*Gate]struct{}{}
	}
	s.members[g] = struct{}{}
	return true
}

// Remove forgets g, freed, and leaves the Set for it.
func (s *Set) Remove(g *Gate) {
	s.mu.Lock()
	delete(s.members, g)
	s.mu.Unlock()
	s.Leave()
}

// Len is the number of members not yet freed.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.members)
}

// Close closes the Set and every member. Like Gate.Close, it does not
// wait.
func (s *Set) Close() {
	s.mu.Lock()
	s.closing = true
	members := make([]*Gate, 0, len(s.members))
	for g := range s.members {
		members = append(members, g)
	}
	s.mu.Unlock()
	s.Gate.Close()
	for _, g := range members {
		g.Close()
	}
}

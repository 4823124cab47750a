package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The streams and the consumer a worker uses; docs/worker.md gives their
// settings.
const (
	// StreamAssign holds assignments until a worker acknowledges them:
	// work-queue retention, file storage.
	StreamAssign = "CAF_EXEC_ASSIGN"
	// StreamResult keeps results, dropping duplicates by message id
	// (the assignment id) inside its duplicate window.
	StreamResult = "CAF_EXEC_RESULT"
	// StreamDLQ keeps dead letters.
	StreamDLQ = "CAF_EXEC_DLQ"
	// StreamCancel keeps cancel requests for CancelMemory, so that a
	// worker that takes an assignment after its cancel still sees it.
	StreamCancel = "CAF_EXEC_CANCEL"
	// Consumer is the one durable pull consumer of StreamAssign that
	// every worker shares.
	Consumer = "blockhost-workers"
)

// Streams are the settings of the streams and the consumer, used when a
// worker creates them.
type Streams struct {
	// Replicas of every stream: 1 on one server, 3 on a cluster of three
	// or more.
	Replicas int
	// Duplicates is the window in which the assignment and result
	// streams drop a message whose id they already hold.
	Duplicates time.Duration
	// ResultMaxAge, DLQMaxAge and CancelMemory bound how long results,
	// dead letters and cancel requests are kept.
	ResultMaxAge, DLQMaxAge, CancelMemory time.Duration
	// AckWait is how long an assignment may go without an ack or an
	// in-progress signal before JetStream delivers it again.
	AckWait time.Duration
	// MaxAckPending bounds the assignments out with workers at once.
	MaxAckPending int
}

// DefaultStreams are the settings a worker uses unless told otherwise.
var DefaultStreams = Streams{
	Replicas:      1,
	Duplicates:    10 * time.Minute,
	ResultMaxAge:  24 * time.Hour,
	DLQMaxAge:     7 * 24 * time.Hour,
	CancelMemory:  time.Hour,
	AckWait:       30 * time.Second,
	MaxAckPending: 10000,
}

func (s Streams) or(d Streams) Streams {
	pick := func(a, b time.Duration) time.Duration {
		if a > 0 {
			return a
		}
		return b
	}
	if s.Replicas <= 0 {
		s.Replicas = d.Replicas
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = d.MaxAckPending
	}
	s.Duplicates, s.ResultMaxAge, s.DLQMaxAge = pick(s.Duplicates, d.Duplicates), pick(s.ResultMaxAge, d.ResultMaxAge), pick(s.DLQMaxAge, d.DLQMaxAge)
	s.CancelMemory, s.AckWait = pick(s.CancelMemory, d.CancelMemory), pick(s.AckWait, d.AckWait)
	return s
}

// StreamConfigs returns the configuration of each stream.
func (s Streams) StreamConfigs() []jetstream.StreamConfig {
	s = s.or(DefaultStreams)
	return []jetstream.StreamConfig{
		{Name: StreamAssign, Subjects: []string{SubjectAssign}, Retention: jetstream.WorkQueuePolicy,
			Storage: jetstream.FileStorage, Replicas: s.Replicas, Duplicates: s.Duplicates, Discard: jetstream.DiscardNew,
			Description: "blockhost: ExecAssignments, each kept until one worker acknowledges it"},
		{Name: StreamResult, Subjects: []string{SubjectResult}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Replicas: s.Replicas, Duplicates: s.Duplicates, MaxAge: s.ResultMaxAge,
			Description: "blockhost: one ExecResult per assignment, duplicates dropped by message id"},
		{Name: StreamDLQ, Subjects: []string{SubjectDLQ}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Replicas: s.Replicas, Duplicates: s.Duplicates, MaxAge: s.DLQMaxAge,
			Description: "blockhost: assignments that can never succeed, with the reason"},
		{Name: StreamCancel, Subjects: []string{SubjectCancel}, Retention: jetstream.LimitsPolicy,
			Storage: jetstream.FileStorage, Replicas: s.Replicas, MaxAge: s.CancelMemory,
			Description: "blockhost: cancel requests, remembered for late assignments"},
	}
}

// ConsumerConfig returns the configuration of the shared consumer.
func (s Streams) ConsumerConfig() jetstream.ConsumerConfig {
	s = s.or(DefaultStreams)
	return jetstream.ConsumerConfig{
		Durable: Consumer, Description: "blockhost workers: each assignment to one worker at a time",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.AckWait,
		// Workers count deliveries themselves and dead-letter an
		// assignment past their limit; a server-side limit would leave it
		// in the work queue, never delivered and never answered.
		MaxDeliver:    -1,
		MaxAckPending: s.MaxAckPending,
		FilterSubject: SubjectAssign,
		Replicas:      s.Replicas,
	}
}

// EnsureStreams creates the streams and the shared consumer where they
// are missing. An existing stream is used as it is, provided the
// assignment stream has work-queue retention; the consumer is created or
// updated to s.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, s Streams) (jetstream.Consumer, error) {
	for _, cfg := range s.StreamConfigs() {
		st, err := js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			st, err = js.Stream(ctx, cfg.Name)
		}
		if err != nil {
			return nil, fmt.Errorf("worker: stream %s: %w", cfg.Name, err)
		}
		if cfg.Name == StreamAssign {
			if r := st.CachedInfo().Config.Retention; r != jetstream.WorkQueuePolicy {
				return nil, &ConfigError{Field: "stream " + StreamAssign,
					Problem: fmt.Sprintf("exists with %v retention; workers need work-queue retention", r)}
			}
		}
	}
	c, err := js.CreateOrUpdateConsumer(ctx, StreamAssign, s.ConsumerConfig())
	if err != nil {
		return nil, fmt.Errorf("worker: consumer %s: %w", Consumer, err)
	}
	return c, nil
}

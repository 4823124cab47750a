package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/worker"
)

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "publish ExecAssignments from a JSONL file; with --wait, print their results",
		ArgsUsage: "FILE.jsonl|-",
		Description: "Each line is one ExecAssignment (docs/worker.md), such as\n" +
			`  {"tenant_id":"acme","job":{"type":"http.request","url":"http://127.0.0.1:8080/"}}` + "\n" +
			"A line without version, assignment_id or request_id gets \"1\" and fresh ids;\n" +
			"without tenant_id, \"default\". Without --wait each published assignment is printed as\n" +
			"{\"assignment_id\",\"request_id\",\"seq\",\"duplicate\"}.\n" +
			"With --wait each ExecResult is printed as one JSON line as it arrives.\n" +
			"Exit codes: 0 all published (and, with --wait, every result arrived), 124 --timeout passed first,\n" +
			"130 interrupted, 1 NATS failed, 2 bad usage or a bad line (nothing is published then).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "nats", Value: "nats://127.0.0.1:4222", Usage: "NATS server or cluster `URL[,URL...]`"},
			&cli.BoolFlag{Name: "wait", Usage: "wait for each assignment's result and print it"},
			&cli.DurationFlag{Name: "timeout", Usage: "give up waiting after this `DURATION`; by default wait without limit"},
			&cli.IntFlag{Name: "replicas", Value: 1, Usage: "replicas of the streams, if submit creates them"},
		},
		Action: submitAction,
	}
}

func submitAction(c *cli.Context) error {
	switch {
	case c.NArg() == 0:
		return usageErrorf("submit: no FILE.jsonl or - given (usage: blockhost submit [flags] FILE.jsonl|-)")
	case c.NArg() > 1:
		return usageErrorf("submit: unexpected arguments after %s: %v (flags come before the file)", c.Args().First(), c.Args().Tail())
	case c.Duration("timeout") < 0:
		return usageErrorf("invalid --timeout %s: must not be negative", c.Duration("timeout"))
	}
	in, source := streamsOf(c).in, "stdin"
	if path := c.Args().First(); path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return usageErrorf("cannot read assignments: %v", err)
		}
		defer f.Close()
		in, source = f, path
	}
	// Every line is read and checked before anything is published.
	type line struct {
		id, req string
		body    []byte
	}
	var lines []line
	r := bufio.NewReaderSize(in, 64<<10)
	for n := 1; ; n++ {
		raw, err := readLine(r)
		if len(bytes.TrimSpace(raw)) > 0 {
			body, id, req, lerr := completeAssignment(raw)
			if lerr != nil {
				return usageErrorf("%s line %d: %v", source, n, lerr)
			}
			lines = append(lines, line{id, req, body})
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return usageErrorf("reading %s at line %d: %v", source, n, err)
		}
	}

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if d := c.Duration("timeout"); d > 0 {
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	interrupted := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			close(interrupted)
			cancel()
		case <-ctx.Done():
		}
	}()
	ended := func() error {
		select {
		case <-interrupted:
			return &exitErr{code: exitCancelled}
		default:
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &exitErr{code: exitTimeout, msg: fmt.Sprintf("submit: --timeout %s passed", c.Duration("timeout"))}
		}
		return nil
	}

	nc, err := nats.Connect(c.String("nats"), nats.Name("blockhost submit"))
	if err != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("cannot connect to NATS at %s: %v", c.String("nats"), err)}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return &exitErr{code: exitError, msg: err.Error()}
	}
	if _, err := worker.EnsureStreams(ctx, js, worker.Streams{Replicas: c.Int("replicas")}); err != nil {
		if e := ended(); e != nil {
			return e
		}
		return &exitErr{code: exitError, msg: err.Error()}
	}

	out := bufio.NewWriter(streamsOf(c).out)
	defer out.Flush()
	// Subscribe before publishing, so that no result is missed.
	var it jetstream.MessagesContext
	if c.Bool("wait") {
		cons, err := js.OrderedConsumer(ctx, worker.StreamResult, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
		if err == nil {
			it, err = cons.Messages()
		}
		if err != nil {
			if e := ended(); e != nil {
				return e
			}
			return &exitErr{code: exitError, msg: "subscribing to results: " + err.Error()}
		}
		defer it.Stop()
	}

	pending := make(map[string]bool, len(lines))
	futures := make([]jetstream.PubAckFuture, len(lines))
	for i, l := range lines {
		pending[l.id] = true
		if futures[i], err = js.PublishAsync(worker.SubjectAssign, l.body, jetstream.WithMsgID(l.id)); err != nil {
			return &exitErr{code: exitError, msg: fmt.Sprintf("publishing %s: %v", l.id, err)}
		}
	}
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			if !c.Bool("wait") {
				b, _ := json.Marshal(map[string]any{"assignment_id": lines[i].id, "request_id": lines[i].req, "seq": ack.Sequence, "duplicate": ack.Duplicate})
				out.Write(append(b, '\n'))
			}
		case err := <-f.Err():
			return &exitErr{code: exitError, msg: fmt.Sprintf("publishing %s: %v", lines[i].id, err)}
		case <-ctx.Done():
			return ended()
		}
	}
	if !c.Bool("wait") {
		return nil
	}
	out.Flush()

	// Stop the iterator when ctx ends, so Next returns.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stop:
		}
	}()
	for len(pending) > 0 {
		m, err := it.Next()
		if err != nil {
			if e := ended(); e != nil {
				return e
			}
			return &exitErr{code: exitError, msg: "reading results: " + err.Error()}
		}
		var res struct {
			AssignmentID string `json:"assignment_id"`
		}
		if json.Unmarshal(m.Data(), &res) != nil || !pending[res.AssignmentID] {
			continue // another client's result, or a line we already printed
		}
		delete(pending, res.AssignmentID)
		out.Write(append(bytes.TrimSpace(m.Data()), '\n'))
		out.Flush()
	}
	return nil
}

// completeAssignment fills in what a line leaves out — version "1",
// fresh assignment and request ids, tenant "default" — and checks the
// result against the wire contract.
func completeAssignment(raw []byte) (body []byte, id, req string, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, "", "", fmt.Errorf("not a JSON object: %v", err)
	}
	fill := func(key, v string) {
		if _, ok := m[key]; !ok {
			m[key], _ = json.Marshal(v)
		}
	}
	fill("version", worker.WireVersion)
	fill("assignment_id", worker.NewID())
	fill("request_id", worker.NewID())
	fill("tenant_id", "default")
	body, _ = json.Marshal(m)
	a, err := worker.DecodeAssignment(body)
	if err != nil {
		var verr *worker.ValidationError
		if errors.As(err, &verr) {
			return nil, "", "", fmt.Errorf("%s: %s", verr.Reason, verr.Message)
		}
		return nil, "", "", err
	}
	return body, a.AssignmentID, a.RequestID, nil
}

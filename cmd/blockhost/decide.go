package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/blockhost/blockhost/host/worker"
)

func decideCommand() *cli.Command {
	return &cli.Command{
		Name:      "decide",
		Usage:     "decide a human.approval step that a worker holds, over NATS",
		ArgsUsage: "APPROVAL_ID",
		Description: "Sends {\"approved\",\"approver\",\"comment\"} to " + worker.SubjectDecide + ".APPROVAL_ID and\n" +
			"prints the worker's reply (docs/worker.md, \"Approvals\"). The approval id is the assignment\n" +
			"id, or the one in the worker's accepted ack and on " + worker.SubjectApprovalRequested + ".\n" +
			"Exit codes: 0 decided, 1 refused or NATS failed, 2 bad usage.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "nats", Value: "nats://127.0.0.1:4222", Usage: "NATS server or cluster `URL[,URL...]`"},
			&cli.StringFlag{Name: "approver", Usage: "`IDENTITY` who decides: one of the step's approvers (required)"},
			&cli.BoolFlag{Name: "approve", Usage: "approve the step"},
			&cli.BoolFlag{Name: "deny", Usage: "deny the step"},
			&cli.StringFlag{Name: "comment", Usage: "the decision's comment `TEXT`"},
			&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "how long to wait for a worker's reply"},
		},
		Action: decideAction,
	}
}

func decideAction(c *cli.Context) error {
	switch {
	case c.NArg() != 1:
		return usageErrorf("decide: give one APPROVAL_ID (usage: blockhost decide --approver ID --approve|--deny APPROVAL_ID)")
	case c.Bool("approve") == c.Bool("deny"):
		return usageErrorf("decide: give exactly one of --approve and --deny")
	case c.String("approver") == "":
		return usageErrorf("decide: --approver is required: who decides")
	case c.Duration("timeout") <= 0:
		return usageErrorf("invalid --timeout %s: must be positive", c.Duration("timeout"))
	}
	approved := c.Bool("approve")
	body, _ := json.Marshal(worker.Decision{Approved: &approved, Approver: c.String("approver"), Comment: c.String("comment")})
	nc, err := nats.Connect(c.String("nats"), nats.Name("blockhost decide"))
	if err != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("cannot connect to NATS at %s: %v", c.String("nats"), err)}
	}
	defer nc.Close()
	id := c.Args().First()
	m, err := nc.Request(worker.DecideSubject(id), body, c.Duration("timeout"))
	if err != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("no worker answered on %s: %v", worker.DecideSubject(id), err)}
	}
	fmt.Fprintln(streamsOf(c).out, string(m.Data))
	var r worker.DecisionReply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("the worker's reply is not a DecisionReply: %v", err)}
	}
	if r.Error != nil {
		return &exitErr{code: exitError, msg: fmt.Sprintf("decision refused: %s: %s", r.Error.Code, r.Error.Message)}
	}
	return nil
}

package serve

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/plugins/approval"
)

// StoreFile is the name of the database file under the store directory.
const StoreFile = "blockhost.db"

// Step states kept in the store. The four final ones are abi.Status
// values; the others are on the way there.
const (
	stateQueued  = "queued"  // accepted, not started (or handed back to be run again)
	stateRunning = "running" // an attempt has started
	stateWaiting = "waiting" // a human.approval step waiting for a decision
)

// Approval states.
const (
	approvalPending   = approval.StatePending
	approvalApproved  = approval.StateApproved
	approvalDenied    = approval.StateDenied
	approvalExpired   = approval.StateExpired
	approvalWithdrawn = approval.StateWithdrawn
)

// schema is the store's layout. Its version is SQLite's user_version; a
// database written by a newer blockhost is refused rather than misread.
const (
	schemaVersion = 1
	schema        = `
CREATE TABLE IF NOT EXISTS steps (
	id              TEXT PRIMARY KEY,
	tenant          TEXT NOT NULL,
	block           TEXT NOT NULL,
	state           TEXT NOT NULL,
	priority        TEXT NOT NULL,
	pool            TEXT NOT NULL,
	input           BLOB,
	may_rerun       INTEGER NOT NULL DEFAULT 0,
	idempotency_key TEXT,
	submitted_by    TEXT NOT NULL,
	trace_id        TEXT NOT NULL DEFAULT '',
	created_ms      INTEGER NOT NULL,
	started_ms      INTEGER,
	finished_ms     INTEGER,
	code            TEXT NOT NULL DEFAULT '',
	latency_ms      REAL,
	result          BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS steps_idempotency ON steps(tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS steps_state ON steps(state, id);
CREATE INDEX IF NOT EXISTS steps_finished ON steps(finished_ms) WHERE finished_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS approvals (
	step_id     TEXT PRIMARY KEY REFERENCES steps(id),
	tenant      TEXT NOT NULL,
	prompt      TEXT NOT NULL,
	approvers   TEXT NOT NULL,
	deadline_ms INTEGER NOT NULL,
	state       TEXT NOT NULL,
	approver    TEXT NOT NULL DEFAULT '',
	comment     TEXT NOT NULL DEFAULT '',
	decided_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS approvals_state ON approvals(state, deadline_ms);
`
)

// store is the durable state of a server: steps, their results and their
// approvals, in one SQLite file. Every change that a client may have seen
// acknowledged is committed before the acknowledgement.
type store struct {
	db *sql.DB
}

// openStore opens, creating if needed, the database under dir.
func openStore(ctx context.Context, dir string) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &StoreError{Path: dir, Err: err}
	}
	path := filepath.Join(dir, StoreFile)
	// WAL lets the status page read while a result is written; FULL makes
	// a commit durable before it returns, so an acknowledged step or
	// decision survives a power cut, not only a crash of the process.
	q := url.Values{}
	for _, p := range []string{"journal_mode(WAL)", "synchronous(FULL)", "busy_timeout(10000)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, &StoreError{Path: path, Err: err}
	}
	// One connection: SQLite has one writer anyway, and one connection
	// rules out SQLITE_BUSY between our own goroutines.
	db.SetMaxOpenConns(1)
	s := &store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, &StoreError{Path: path, Err: err}
	}
	return s, nil
}

func (s *store) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this blockhost's %d", v, schemaVersion)
	}
	if _, err := s.db.ExecContext(ctx, schema); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion))
	return err
}

func (s *store) close() error { return s.db.Close() }

// stepRow is one step as stored.
type stepRow struct {
	ID, Tenant, Block, State, Priority, Pool string
	Input                                    []byte
	MayRerun                                 bool
	IdempotencyKey                           string
	SubmittedBy, TraceID                     string
	Created                                  time.Time
	Started, Finished                        time.Time // zero when not yet
	Code                                     string
	LatencyMS                                float64
	Result                                   *abi.StepResult
	Approval                                 *approvalRow
}

// approvalRow is one approval request as stored.
type approvalRow struct {
	StepID, Tenant, Prompt string
	Approvers              []string
	Deadline               time.Time
	State                  string
	Approver, Comment      string
	Decided                time.Time
}

func (r *stepRow) final() bool { return isFinal(r.State) }

func isFinal(state string) bool {
	return abi.Status(state).Valid()
}

func msOf(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func timeOf(ms sql.NullInt64) time.Time {
	if !ms.Valid {
		return time.Time{}
	}
	return time.UnixMilli(ms.Int64).UTC()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// errDuplicate: a step with the same tenant and idempotency key exists.
var errDuplicate = errors.New("duplicate idempotency key")

// insert stores a new step and, for an approval step, its request, in one
// transaction.
func (s *store) insert(ctx context.Context, r *stepRow) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT INTO steps (id, tenant, block, state, priority, pool, input, may_rerun,
		idempotency_key, submitted_by, trace_id, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)`,
		r.ID, r.Tenant, r.Block, r.State, r.Priority, r.Pool, r.Input, r.MayRerun,
		nullString(r.IdempotencyKey), r.SubmittedBy, r.TraceID, r.Created.UnixMilli())
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed: steps.tenant, steps.idempotency_key") {
			return errDuplicate
		}
		return err
	}
	if a := r.Approval; a != nil {
		approvers, _ := json.Marshal(a.Approvers)
		_, err = tx.ExecContext(ctx, `INSERT INTO approvals (step_id, tenant, prompt, approvers, deadline_ms, state)
			VALUES (?,?,?,?,?,?)`, r.ID, r.Tenant, a.Prompt, string(approvers), a.Deadline.UnixMilli(), a.State)
		if err != nil {
			return err
		}
	}
	return tx.Commit()
}

const stepColumns = `s.id, s.tenant, s.block, s.state, s.priority, s.pool, s.input, s.may_rerun,
	COALESCE(s.idempotency_key, ''), s.submitted_by, s.trace_id, s.created_ms, s.started_ms, s.finished_ms,
	s.code, COALESCE(s.latency_ms, 0), s.result,
	a.step_id, a.prompt, a.approvers, a.deadline_ms, a.state, a.approver, a.comment, a.decided_ms`

const stepFrom = ` FROM steps s LEFT JOIN approvals a ON a.step_id = s.id`

type scanner interface{ Scan(...any) error }

func scanStep(sc scanner) (*stepRow, error) {
	var (
		r                            stepRow
		created                      int64
		started, finished, aDeadline sql.NullInt64
		aDecided                     sql.NullInt64
		result                       []byte
		aID, aPrompt, aApprovers     sql.NullString
		aState, aApprover, aComment  sql.NullString
	)
	err := sc.Scan(&r.ID, &r.Tenant, &r.Block, &r.State, &r.Priority, &r.Pool, &r.Input, &r.MayRerun,
		&r.IdempotencyKey, &r.SubmittedBy, &r.TraceID, &created, &started, &finished,
		&r.Code, &r.LatencyMS, &result,
		&aID, &aPrompt, &aApprovers, &aDeadline, &aState, &aApprover, &aComment, &aDecided)
	if err != nil {
		return nil, err
	}
	r.Created, r.Started, r.Finished = time.UnixMilli(created).UTC(), timeOf(started), timeOf(finished)
	if len(result) > 0 {
		r.Result = new(abi.StepResult)
		if err := json.Unmarshal(result, r.Result); err != nil {
			return nil, fmt.Errorf("step %s: stored result: %w", r.ID, err)
		}
	}
	if aID.Valid {
		a := &approvalRow{StepID: aID.String, Tenant: r.Tenant, Prompt: aPrompt.String, Deadline: timeOf(aDeadline),
			State: aState.String, Approver: aApprover.String, Comment: aComment.String, Decided: timeOf(aDecided)}
		if err := json.Unmarshal([]byte(aApprovers.String), &a.Approvers); err != nil {
			return nil, fmt.Errorf("step %s: stored approvers: %w", r.ID, err)
		}
		r.Approval = a
	}
	return &r, nil
}

// errNoStep: no step has that ID.
var errNoStep = errors.New("no such step")

func (s *store) get(ctx context.Context, id string) (*stepRow, error) {
	r, err := scanStep(s.db.QueryRowContext(ctx, "SELECT "+stepColumns+stepFrom+" WHERE s.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoStep
	}
	return r, err
}

func (s *store) byIdempotencyKey(ctx context.Context, tenant, key string) (*stepRow, error) {
	r, err := scanStep(s.db.QueryRowContext(ctx, "SELECT "+stepColumns+stepFrom+
		" WHERE s.tenant = ? AND s.idempotency_key = ?", tenant, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoStep
	}
	return r, err
}

// filter selects steps for a listing. Empty fields select all.
type filter struct {
	Tenant, State, Block string
	Before               string // IDs sort by submission time: the page after a cursor
	Limit                int
}

func (s *store) list(ctx context.Context, f filter) ([]*stepRow, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"s.tenant = ?", f.Tenant}, {"s.state = ?", f.State}, {"s.block = ?", f.Block}, {"s.id < ?", f.Before}} {
		if c.v != "" {
			where = append(where, c.col)
			args = append(args, c.v)
		}
	}
	q := "SELECT " + stepColumns + stepFrom
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY s.id DESC LIMIT ?"
	args = append(args, f.Limit)
	return s.query(ctx, q, args...)
}

func (s *store) query(ctx context.Context, q string, args ...any) ([]*stepRow, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*stepRow
	for rows.Next() {
		r, err := scanStep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// unfinished returns every step not in a final state, oldest first.
func (s *store) unfinished(ctx context.Context) ([]*stepRow, error) {
	return s.query(ctx, "SELECT "+stepColumns+stepFrom+" WHERE s.state IN (?,?,?) ORDER BY s.id",
		stateQueued, stateRunning, stateWaiting)
}

// pendingApprovals returns the steps waiting for a decision, those of
// tenant only unless tenant is empty, soonest deadline first.
func (s *store) pendingApprovals(ctx context.Context, tenant string, limit int) ([]*stepRow, error) {
	q := "SELECT " + stepColumns + stepFrom + " WHERE a.state = ?"
	args := []any{approvalPending}
	if tenant != "" {
		q += " AND s.tenant = ?"
		args = append(args, tenant)
	}
	q += " ORDER BY a.deadline_ms LIMIT ?"
	return s.query(ctx, q, append(args, limit)...)
}

// countByState counts steps per state, for the status page.
func (s *store) countByState(ctx context.Context, tenant string) (map[string]int, error) {
	q, args := "SELECT state, COUNT(*) FROM steps", []any{}
	if tenant != "" {
		q += " WHERE tenant = ?"
		args = append(args, tenant)
	}
	rows, err := s.db.QueryContext(ctx, q+" GROUP BY state", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// errNotInState: the row was not in the state the change requires;
// someone else moved it first.
var errNotInState = errors.New("step is not in the expected state")

// markRunning records that an attempt starts. It must be committed before
// the block runs: after a crash, a step recorded as queued is run again,
// so one that started must never look queued.
func (s *store) markRunning(ctx context.Context, id string, now time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE steps SET state = ?, started_ms = COALESCE(started_ms, ?)
		WHERE id = ? AND state IN (?, ?)`, stateRunning, now.UnixMilli(), id, stateQueued, stateRunning)
	return affected(res, err)
}

// requeue hands a step back to be run again.
func (s *store) requeue(ctx context.Context, id string) error {
	res, err := s.db.ExecContext(ctx, `UPDATE steps SET state = ? WHERE id = ? AND state IN (?, ?)`,
		stateQueued, id, stateQueued, stateRunning)
	return affected(res, err)
}

// finish records a step's result. It changes nothing and returns
// errNotInState when the step already has one. For an approval step still
// pending, approvalState moves the approval too, in the same transaction.
func (s *store) finish(ctx context.Context, res *abi.StepResult, now time.Time, approvalState string) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	code := ""
	if res.Error != nil {
		code = res.Error.Code.Name()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, `UPDATE steps SET state = ?, result = ?, code = ?, latency_ms = ?, finished_ms = ?
		WHERE id = ? AND state IN (?, ?, ?)`, string(res.Status), b, code, res.LatencyMS, now.UnixMilli(),
		res.StepID, stateQueued, stateRunning, stateWaiting)
	if err := affected(r, err); err != nil {
		return err
	}
	if approvalState != "" {
		r, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, decided_ms = ? WHERE step_id = ? AND state = ?`,
			approvalState, now.UnixMilli(), res.StepID, approvalPending)
		if err := affected(r, err); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// decide records a decision on a pending approval and hands its step to
// the executor (state queued), in one transaction.
func (s *store) decide(ctx context.Context, id, state, approver, comment string, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, `UPDATE approvals SET state = ?, approver = ?, comment = ?, decided_ms = ?
		WHERE step_id = ? AND state = ?`, state, approver, comment, now.UnixMilli(), id, approvalPending)
	if err := affected(r, err); err != nil {
		return err
	}
	r, err = tx.ExecContext(ctx, `UPDATE steps SET state = ? WHERE id = ? AND state = ?`, stateQueued, id, stateWaiting)
	if err := affected(r, err); err != nil {
		return err
	}
	return tx.Commit()
}

// prune deletes at most limit finished steps — final state, finished
// before before — with their approvals, oldest first, in one transaction.
// It returns how many it deleted.
func (s *store) prune(ctx context.Context, before time.Time, limit int) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	const old = `SELECT id FROM steps WHERE finished_ms < ? AND state IN (?, ?, ?, ?) ORDER BY finished_ms, id LIMIT ?`
	args := []any{before.UnixMilli(), string(abi.StatusSuccess), string(abi.StatusError), string(abi.StatusTimeout), string(abi.StatusCancelled), limit}
	if _, err := tx.ExecContext(ctx, `DELETE FROM approvals WHERE step_id IN (`+old+`)`, args...); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM steps WHERE id IN (`+old+`)`, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return int(n), tx.Commit()
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return errNotInState
	}
	return nil
}

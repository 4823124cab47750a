//go:build !wasip1

package sdk_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

func TestDeadlineAndCheck_duringStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		var (
			dl        time.Time
			hasDL     bool
			before    error
			after     error
			afterDL   time.Time
			ctxCause  error
			ctxDoneOK bool
		)
		res := sdktest.Config{Timeout: 2 * time.Second}.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
			dl, hasDL = sdk.Deadline()
			before = sdk.Check()
			time.Sleep(3 * time.Second)
			select {
			case <-ctx.Done():
				ctxDoneOK = true
			default:
			}
			ctxCause = context.Cause(ctx)
			after = sdk.Check()
			afterDL, _ = sdk.Deadline()
			return []byte("late"), nil
		}, nil)

		if !hasDL || !dl.Equal(start.Add(2*time.Second)) {
			t.Errorf("Deadline() = %v, %v; want %v, true", dl, hasDL, start.Add(2*time.Second))
		}
		if before != nil {
			t.Errorf("Check() during the step = %v, want nil", before)
		}
		if !errors.Is(after, sdk.ErrTimeout) {
			t.Errorf("Check() after the deadline = %v, want ErrTimeout", after)
		}
		if !afterDL.Equal(start.Add(3 * time.Second)) {
			t.Errorf("Deadline() after the deadline = %v, want now", afterDL)
		}
		if !ctxDoneOK || !errors.Is(ctxCause, sdk.ErrTimeout) {
			t.Errorf("context done %v with cause %v, want done with ErrTimeout", ctxDoneOK, ctxCause)
		}
		if res.Status != abi.StatusTimeout || res.Err == nil || res.Err.Code != abi.CodeCancelledByTimeout {
			t.Errorf("status %s, err %+v; want timeout, cancelled_by_timeout", res.Status, res.Err)
		}
		if res.Output != nil {
			t.Errorf("output %q written after the deadline", res.Output)
		}
	})
}

func TestDeadline_noneWithoutTimeout(t *testing.T) {
	var has bool
	sdktest.Call(t, func(context.Context, []byte) ([]byte, error) {
		_, has = sdk.Deadline()
		return nil, nil
	}, nil)
	if has {
		t.Error("Deadline reports a deadline for a step without one")
	}
}

func TestOutsideStep(t *testing.T) {
	if err := sdk.Check(); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("Check() = %v, want ErrUnavailable", err)
	}
	if err := sdk.Log(sdk.LevelInfo, "m"); !errors.Is(err, sdk.ErrUnavailable) {
		t.Errorf("Log() = %v, want ErrUnavailable", err)
	}
	if _, ok := sdk.Deadline(); ok {
		t.Error("Deadline() reports a deadline outside a step")
	}
}

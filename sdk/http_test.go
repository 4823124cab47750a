//go:build !wasip1

package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
	"github.com/blockhost/blockhost/sdk/sdktest"
)

// api is an in-process server for the sdktest fake host.
var api = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo":
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Method", r.Method)
		w.Header().Set("X-Token", r.Header.Get("X-Token"))
		fmt.Fprintf(w, "%s %s", r.Method, body)
	case "/busy":
		w.Header().Set("Retry-After", "3")
		w.WriteHeader(http.StatusServiceUnavailable)
	case "/big":
		w.Write([]byte(strings.Repeat("x", 100)))
	default:
		http.Error(w, "no such thing", http.StatusBadRequest)
	}
})

// apiStep is a step granted GET and POST to api.example.com, answered by
// api.
var apiStep = sdktest.Config{
	HTTPGrants: []sdktest.HTTPGrant{{Name: "api", Host: "api.example.com", Methods: []string{"GET", "POST"}}},
	HTTP:       api,
}

func TestHTTPDo_response(t *testing.T) {
	var got struct {
		status        int
		method, token string
		body          string
	}
	res := apiStep.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
		req := sdk.NewHTTPRequest("POST", "https://api.example.com/echo", strings.NewReader("ping"))
		req.Header.Set("x-token", "t0k3n")
		resp, err := sdk.HTTPDo(ctx, req)
		if err != nil {
			return nil, err
		}
		body, err := sdk.ReadHTTPBody(resp)
		if err != nil {
			return nil, err
		}
		got.status, got.method, got.token, got.body = resp.StatusCode, resp.Header.Get("x-method"), resp.Header.Get("X-Token"), string(body)
		return nil, resp.StatusError()
	}, nil)
	if res.Status != abi.StatusSuccess {
		t.Fatalf("status %s: %v", res.Status, res.Err)
	}
	if got.status != 200 || got.method != "POST" || got.token != "t0k3n" || got.body != "POST ping" {
		t.Fatalf("got %+v", got)
	}
}

func TestHTTPDo_statusErrors(t *testing.T) {
	tests := []struct {
		path       string
		class      abi.Class
		retryAfter time.Duration
	}{
		{"/nope", abi.ClassPermanent, 0},
		{"/busy", abi.ClassRetryable, 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var statusErr error
			res := apiStep.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
				resp, err := sdk.HTTPGet(ctx, "https://api.example.com"+tc.path)
				if err != nil {
					return nil, err
				}
				resp.Body.Close()
				statusErr = resp.StatusError()
				return nil, statusErr
			}, nil)
			var he *sdk.HTTPError
			if !errors.Is(statusErr, sdk.ErrHTTPStatus) || !errors.As(statusErr, &he) || he.Class != tc.class || he.RetryAfter != tc.retryAfter {
				t.Fatalf("StatusError() = %#v; want http_error %s, retry after %s", statusErr, tc.class, tc.retryAfter)
			}
			if res.Status != abi.StatusError || res.Err.Code != abi.CodeHTTPError || res.Err.Class != tc.class {
				t.Fatalf("step ended %s %+v; want error http_error %s", res.Status, res.Err, tc.class)
			}
		})
	}
}

func TestHTTPDo_denied(t *testing.T) {
	var err error
	res := sdktest.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
		_, err = sdk.HTTPGet(ctx, "https://api.example.com/echo")
		return nil, err
	}, nil)
	var he *sdk.HTTPError
	if !errors.Is(err, sdk.ErrDenied) || !errors.As(err, &he) || he.Code != abi.CodePermissionDenied || !strings.Contains(he.Message, "no HTTP grants") {
		t.Fatalf("err = %v; want denied with the host's detail", err)
	}
	if res.Err == nil || res.Err.Code != abi.CodePermissionDenied {
		t.Fatalf("step error %+v; want permission_denied", res.Err)
	}
}

func TestHTTPDo_truncated(t *testing.T) {
	var body []byte
	var err error
	apiStep.Call(t, func(ctx context.Context, _ []byte) ([]byte, error) {
		req := sdk.NewHTTPRequest("GET", "https://api.example.com/big", nil)
		req.MaxResponseBody = 10
		resp, err2 := sdk.HTTPDo(ctx, req)
		if err2 != nil {
			return nil, err2
		}
		body, err = sdk.ReadHTTPBody(resp)
		return nil, nil
	}, nil)
	if string(body) != "xxxxxxxxxx" || !errors.Is(err, sdk.ErrTruncated) || !errors.Is(err, sdk.ErrLimit) {
		t.Fatalf("body %q err %v; want 10 bytes then truncated", body, err)
	}
}

func TestHTTPDo_outsideAStep(t *testing.T) {
	_, err := sdk.HTTPGet(context.Background(), "https://api.example.com/")
	if !errors.Is(err, sdk.ErrUnavailable) {
		t.Fatalf("err = %v; want unavailable", err)
	}
}

func TestHTTPError_matching(t *testing.T) {
	tests := []struct {
		err   *sdk.HTTPError
		match []error
		not   []error
	}{
		{&sdk.HTTPError{Func: abi.FuncHTTPRequest, Result: abi.ResultUnavailable, Code: abi.CodeConnectionTimeout, Class: abi.ClassRetryable},
			[]error{sdk.ErrUnavailable, sdk.ErrConnectionTimeout}, []error{sdk.ErrNetwork, sdk.ErrDenied, sdk.ErrHTTPStatus}},
		{&sdk.HTTPError{Func: abi.FuncHTTPRequest, Result: abi.ResultUnavailable, Code: abi.CodeNetworkError, Class: abi.ClassRetryable},
			[]error{sdk.ErrUnavailable, sdk.ErrNetwork}, []error{sdk.ErrConnectionTimeout}},
		{&sdk.HTTPError{Func: abi.FuncHTTPRequest, Result: abi.ResultDenied, Code: abi.CodePermissionDenied},
			[]error{sdk.ErrDenied}, []error{sdk.ErrNetwork, sdk.ErrLimit}},
		{&sdk.HTTPError{Func: abi.FuncHTTPBodyRead, Result: abi.ResultLimit, Code: abi.CodeQuotaExceeded},
			[]error{sdk.ErrLimit, sdk.ErrTruncated}, []error{sdk.ErrNetwork}},
		{&sdk.HTTPError{Func: abi.FuncHTTPRequest, Result: abi.ResultLimit, Code: abi.CodeQuotaExceeded},
			[]error{sdk.ErrLimit}, []error{sdk.ErrTruncated}},
		{&sdk.HTTPError{Result: abi.ResultOK, Code: abi.CodeHTTPError, StatusCode: 503, Class: abi.ClassRetryable},
			[]error{sdk.ErrHTTPStatus}, []error{sdk.ErrIO, sdk.ErrNetwork}},
		{&sdk.HTTPError{Func: abi.FuncHTTPRequest, Result: abi.ResultTimeout, Code: abi.CodeCancelledByTimeout},
			[]error{sdk.ErrTimeout}, []error{sdk.ErrCancelled}},
	}
	for _, tc := range tests {
		wrapped := fmt.Errorf("calling upstream: %w", tc.err)
		for _, m := range tc.match {
			if !errors.Is(wrapped, m) {
				t.Errorf("%+v does not match %v", tc.err, m)
			}
		}
		for _, m := range tc.not {
			if errors.Is(wrapped, m) {
				t.Errorf("%+v matches %v", tc.err, m)
			}
		}
		var se *sdk.Error
		if !errors.As(wrapped, &se) || se.Code != tc.err.Code || se.Class != tc.err.Class {
			t.Errorf("%+v: errors.As gives %+v; want its code and class", tc.err, se)
		}
	}
}

func TestHTTPHeader(t *testing.T) {
	h := sdk.HTTPHeader{}
	h.Set("content-type", "text/plain")
	h.Add("X-MULTI", "a")
	h.Add("x-multi", "b")
	if h.Get("Content-Type") != "text/plain" || strings.Join(h.Values("X-Multi"), ",") != "a,b" {
		t.Fatalf("header %v", h)
	}
	if _, ok := h["X-Multi"]; !ok {
		t.Fatalf("names are not canonical: %v", h)
	}
	h.Del("x-multi")
	if len(h.Values("X-Multi")) != 0 {
		t.Fatalf("Del left %v", h)
	}
}

// A block fetches JSON from an API it is granted; natively the request is
// served by the handler given to sdktest.
func ExampleHTTPGet() {
	handler := func(ctx context.Context, _ []byte) ([]byte, error) {
		resp, err := sdk.HTTPGet(ctx, "https://api.example.com/echo")
		if err != nil {
			return nil, err // denied, network_error, connection_timeout… with code and class
		}
		if err := resp.StatusError(); err != nil {
			resp.Body.Close()
			return nil, err // http_error, retryable for 429 and 5xx
		}
		return sdk.ReadHTTPBody(resp)
	}
	res := apiStep.Call(nil, handler, nil)
	fmt.Printf("%s %q\n", res.Status, res.Output)
	// Output:
	// success "GET "
}

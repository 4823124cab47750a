package sdk_test

import (
	"testing"

	"github.com/blockhost/blockhost/abi"
	"github.com/blockhost/blockhost/sdk"
)

// TestHTTPError_namesTheRequestOnce: the host's message for a failed
// request starts with the request; the SDK's does not say it twice.
func TestHTTPError_namesTheRequestOnce(t *testing.T) {
	for _, tc := range []struct {
		e    *sdk.HTTPError
		want string
	}{
		{&sdk.HTTPError{Method: "GET", URL: "http://h.example/?q=1", Result: abi.ResultDenied,
			Message: "GET http://h.example/: denied: no HTTP grants: this step may not use the network"},
			"sdk: GET http://h.example/: denied: no HTTP grants: this step may not use the network"},
		{&sdk.HTTPError{Method: "GET", URL: "http://h.example/", Message: "HTTP 404 Not Found", StatusCode: 404},
			"sdk: GET http://h.example/: HTTP 404 Not Found"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q\n want %q", got, tc.want)
		}
	}
}

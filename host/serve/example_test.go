package serve_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/blockhost/blockhost/host/serve"
	_ "github.com/blockhost/blockhost/plugins/standard"
)

// A server with no catalog but human.approval, for this machine only:
// submit an approval and decide it.
func Example() {
	dir, _ := os.MkdirTemp("", "serve-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	srv, err := serve.New(ctx, serve.NewConfig().WithStoreDir(dir).WithInsecureLocal(true))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	post := func(path, body string) string {
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	step := post("/v1/steps", `{"block":"human.approval","input":{"prompt":"Ship it?","timeout_ms":60000,"approvers":["local"]}}`)
	id := strings.SplitN(strings.SplitN(step, `"id": "`, 2)[1], `"`, 2)[0]
	decided := post("/v1/approvals/"+id, `{"approved":true,"comment":"go"}`)
	fmt.Println(strings.Contains(decided, `"status": "success"`), strings.Contains(decided, `"approver": "local"`))
	// Output: true true
}

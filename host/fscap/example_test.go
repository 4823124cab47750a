package fscap_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/blockhost/blockhost/host/fscap"
)

// A session is one step's view of its grants: guest paths in, nothing
// outside the granted directories reachable.
func ExampleSession() {
	dir, _ := os.MkdirTemp("", "fscap-example")
	defer os.RemoveAll(dir)

	ctx := context.Background()
	s, err := fscap.Open(ctx, []fscap.Grant{{HostDir: dir, GuestPath: "/data"}}, fscap.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	if err := s.WriteFile(ctx, "/data/hello.txt", []byte("hello"), 0); err != nil {
		fmt.Println(err)
	}
	b, _ := s.ReadFile(ctx, "/data/hello.txt", 1<<20)
	fmt.Println(string(b))

	_, err = s.ReadFile(ctx, "/data/../etc/passwd", 1<<20)
	fmt.Println(errors.Is(err, fs.ErrPermission), fscap.Classify(err).Code)
	fmt.Println(err)
	// Output:
	// hello
	// true permission_denied(2003)
	// read /data/../etc/passwd: permission denied: ".." element: a path may not climb out of a directory
}

// ParseDirSpec reads the command line's --allow-dir.
func ExampleParseDirSpec() {
	g, _ := fscap.ParseDirSpec("/srv/photos:/in:rw")
	fmt.Println(g.HostDir, g.GuestPath, g.ReadOnly)
	// Output:
	// /srv/photos /in false
}

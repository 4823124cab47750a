// Package blockhost holds the source of the packages a block imports — abi
// and sdk, with sdk/sdktest and the C header sdk/c/blockhost.h — embedded,
// so that `blockhost init` can write them into a new block project and the
// project builds and tests with no network: the module is not published,
// and `go get github.com/blockhost/blockhost/sdk` fails.
//
// Both packages import only the standard library, so the copy is a whole
// module by itself. The host and the CLI are not part of it.
package blockhost

import "embed"

// BlockSource is abi/ and sdk/ as they were when this binary was built,
// tests included (the writer of a copy decides what to keep).
//
//go:embed abi/*.go sdk
var BlockSource embed.FS

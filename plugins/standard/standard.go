// Package standard imports the standard set of built-in blocks; a program
// that blank-imports it can run every one of them by name.
package standard

import (
	// http.request: one HTTP request under the step's HTTP grants.
	_ "github.com/blockhost/blockhost/plugins/httprequest"

	// fs.blob_put and fs.blob_get: blobs in a directory the step is
	// granted.
	_ "github.com/blockhost/blockhost/plugins/fsblob"

	// sql.query and sql.exec: one statement on a database the step is
	// granted.
	_ "github.com/blockhost/blockhost/plugins/sqlquery"

	// human.approval: a step that waits for a person's decision.
	_ "github.com/blockhost/blockhost/plugins/approval"
)

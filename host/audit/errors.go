package audit

import "errors"

// ErrSeverity is matched by the error ParseSeverity returns for a name
// that is not a severity.
var ErrSeverity = errors.New("audit: unknown severity")

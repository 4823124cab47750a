package capability

import "errors"

// ErrNoGrant is what a capability's grant conversion (GrantOf) reports
// when a value of the wrong type is given as its grant.
var ErrNoGrant = errors.New("capability: grant of the wrong type")

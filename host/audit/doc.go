// Package audit reviews block manifests without running them: Lint finds
// grants and settings a security reviewer should look at twice, and Diff
// says what a change to a manifest grants or takes away.
//
// The package guarantees that:
//
//   - every finding has a stable ID (Rule.ID, such as "BH101") that never
//     changes meaning, and one of four severities, so CI can gate on it
//     and a suppression list stays valid across versions;
//   - nothing runs: the module, when Lint reads it, is decoded for its
//     imports by the default engine's compiler (host/engine), never
//     instantiated, and no grant is exercised;
//   - a manifest that cannot be read or parsed is an error, never an empty
//     list of findings;
//   - Diff reports every field of every grant that differs, each marked as
//     granting, revoking or neutral, so a widening cannot hide in a change
//     that looks like a narrowing.
//
// The rules are listed in docs/security.md.
package audit

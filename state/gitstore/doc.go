// Package gitstore is a state.Store on a branch of a git repository: the
// CLI reads and edits the declared state in a cached clone and publishes
// each edit as one commit, pushed with go-git.
//
// Locations are those of source/git (https, http, ssh, scp-like, file;
// //SUBPATH; ?ref=BRANCH), with the same credentials; a tag, semver range
// or commit cannot be committed to and is refused. Without ?ref= the store
// uses the branch the remote's HEAD points to, or "main" in an empty
// repository (whose first Edit creates it).
//
// What it guarantees:
//   - Dir and Edit start from the remote branch's head as fetched now; the
//     cached clone (under CacheDir, one per location) is reset to it, and
//     changes left in it by an interrupted run are dropped.
//   - Edit publishes exactly what fn changed under SUBPATH as one commit
//     with the given message and author; nothing changed means no commit.
//   - A push is never forced. When someone else pushed first, Edit fetches,
//     resets and calls fn again (up to MaxAttempts in all); an error fn
//     returns then — state.ErrExists when the other writer created the same
//     release — is returned unchanged and nothing of this edit is
//     published. A push that fails for another reason (network,
//     credentials) takes the local commit back, so retrying starts clean.
//   - With NoPush the commit stays in the clone; later refreshes keep such
//     commits (they are only fast-forwarded, never reset away) and the next
//     Edit without NoPush pushes them along with its own. Should the remote
//     have moved meanwhile, that push is refused with ErrRejected rather
//     than dropping them.
//   - Credentials never appear in errors or String().
//
// Operations on one Store, and on Stores of several processes sharing a
// cache folder, take turns on a lock file in the clone's folder.
package gitstore

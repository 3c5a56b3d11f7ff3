// Package git is the source backend for a declared state kept in a git
// repository, read with go-git (no git binary is needed, except that
// file:// repositories are read through go-git's file transport, which
// runs git-upload-pack).
//
// # Locations
//
//	LOCATION[//SUBPATH][?ref=BRANCH|tag=TAG|semver=RANGE|commit=SHA]
//
// LOCATION is https://host/org/repo(.git), http://…, ssh://[user@]host[:port]/path,
// scp-like user@host:org/repo.git, or file:///path/repo, each optionally
// prefixed "git+". //SUBPATH (go-getter's convention) makes a folder inside
// the repository the state root. The query picks what to follow: a branch
// (ref=), a tag (tag=), the highest tag matching a semver range (semver=,
// Masterminds/semver syntax, e.g. "^1.2" or ">=1.0.0, <2.0.0"; tags that are
// not versions are ignored, a leading "v" is allowed), or one commit
// (commit=, the full 40-digit id). Without one, the branch the remote's
// HEAD points to.
//
// # Authentication
//
// See Auth: https/http basic auth (user and password, or a token sent as
// the password of user "x-access-token"), from source.Credentials or the
// URL's user info; ssh with a private key (optionally encrypted), the
// ssh-agent or ~/.ssh/id_*, and the server's host key checked against
// known_hosts (default ~/.ssh/known_hosts) — skipped only with
// InsecureIgnoreHostKey. Credentials never appear in String() or errors:
// errors are *Error values whose messages are built from the redacted
// location and scrubbed of every secret.
//
// # Fetch
//
// Each Fetch makes one ls-remote round trip (for smart HTTP: one GET of
// info/refs) to resolve the ref. When the resolved commit is the one
// fetched last, Fetch returns the previous artifact and does nothing else:
// an idle poll costs one request, downloads nothing and writes nothing.
// Otherwise it fetches that commit with depth 1 into a bare repository
// cached under Options.CacheDir (no download when the commit is cached
// already, e.g. after a revert), submodules never, and writes the commit's
// files from the object store (no checkout) into a new snapshot folder. A
// commit that is no branch's or tag's tip is fetched by id when the server
// allows it, else by one full fetch (once: a commit never changes).
//
// With //SUBPATH, the snapshot holds the folder containing SUBPATH and
// Artifact.Path is SUBPATH inside it: a state directory may use charts
// beside it ("../charts/web", see state.Dir.ResolveChart). Nothing above
// that folder is written, and without a sub-path the state root's parent
// holds nothing else, so references climbing higher find nothing.
//
// The artifact's Revision is "BRANCH@sha1:<hex>" or "TAG@sha1:<hex>", or
// "sha1:<hex>" for a pinned commit; Digest is "sha256:<hex>" over the
// paths and contents of every file in the snapshot (with a sub-path, its
// parent folder's), computed as state.Dir.Revision computes it for a
// folder, so it changes only when that content does.
//
// # Snapshots
//
// A snapshot is written once, never modified, and stays until the Fetch
// after the one that replaced it returns (the current and the previous
// snapshot exist; older ones are removed); a failed Fetch removes its
// half-written folder and keeps the last good artifact. Symbolic links are
// never materialised: a snapshot holds no symlinks (a link in the
// repository is simply absent, whether it points inside or outside).
// Submodules are absent too. A file larger than Options.MaxFileSize
// (default 10 MiB) fails the Fetch with an error naming it and wrapping
// ErrTooLarge; objects larger than the cap are never loaded into memory
// when the snapshot is written (go-git's fetch still inflates each object
// it receives once, to index the pack). Tree entries named ".", "..",
// ".git" or holding a slash are refused.
//
// A deleted branch, a missing tag, an unreachable host or wrong
// credentials fail the Fetch with an error naming the redacted location
// and the reason (errors.Is: ErrRefNotFound,
// transport.ErrAuthenticationRequired, ...); the last good artifact stays
// on disk. One process at a time may use a cache folder.
package git

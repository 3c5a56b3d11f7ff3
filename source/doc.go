// Package source fetches a declared state from where a team keeps it — a
// git repository, a local folder (often an SVN or Bazaar checkout), an
// object-store bucket — as a consistent local snapshot the reconciler reads.
//
// Each backend lives in a sub-package (source/git, source/dir,
// source/bucket) and implements Source; Open picks one from the URL in one
// plain function. Backends that learn of changes by themselves (fsnotify on
// a folder, a webhook for git) also implement Notifier. Every backend runs
// the conformance suite in source/sourcetest.
//
// Credentials never appear in errors, logs or String(): URLs are redacted
// with Redact.
package source

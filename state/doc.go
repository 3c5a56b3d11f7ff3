// Package state reads and writes charter's declared state: a directory of
// human-readable YAML files saying which releases should exist.
//
// A state directory looks like this:
//
//	STATE/
//	  charter.yaml             optional marker: apiVersion charter.sh/v1, kind State
//	  releases/NAME.yaml       one Release declaration per release
//	  charts/NAME-VERSION.tgz  local charts bundled by `charter deploy ./chart`
//	  values/...               optional values files declarations reference
//	  repositories.yaml        chart repositories (see Repositories)
//
// Humans may edit these files by hand, and the CLI edits them too; the
// package is written so that both can happen safely:
//
//   - Reading is strict. A file that is not YAML, holds duplicate keys or
//     unknown fields, exceeds 10 MiB, or declares a name other than its file
//     name is reported with a one-line error naming the file and the problem.
//     Temporary and editor files (.charter-tmp-*, *~, .*.swp, #*#) are
//     ignored.
//   - Writes are atomic: a file is written in full to a temporary file in the
//     same folder, synced, and then renamed (or, for Create, hard-linked, so
//     that creating is also exclusive) into place. A crash or cancellation
//     never leaves a half-written declaration.
//   - Writes are serialised by an flock(2) on STATE/.charter.lock, across
//     goroutines and processes, so concurrent Updates never lose changes.
//   - Update edits the existing file through kyaml and replays the change
//     onto the original text: comments, key order, blank lines and quoting
//     of everything it does not change are kept byte for byte.
//   - Nothing is ever written outside the state directory: every path
//     (chart references, values files, bundled charts) goes through
//     Dir.ResolvePath, which refuses absolute paths, "../" and symbolic links
//     that lead outside.
//
// Values are decoded with the same YAML rules Helm applies to a values file
// and merged with Helm's -f rules (see Dir.ValuesFor), so a declaration means
// what the equivalent `helm install -f` would mean.
package state

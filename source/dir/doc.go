// Package dir is the source backend for a local folder: a plain folder, an
// `svn checkout` or `svn export`, a `brz checkout` or branch. Teams commit
// with their own tool and update the checkout (`svn up`, `brz update`); the
// daemon notices through fsnotify and fetches.
//
// What it guarantees:
//
//   - Fetch copies the folder into a new snapshot folder under the cache
//     dir and returns it only when the copy is consistent: every file and
//     folder has the same size and modification time after the copy as
//     before, the content digest of the copy equals that of a read just
//     before it, the VCS revision did not move and the watcher saw no
//     change meanwhile. Otherwise it retries (a few times, backing off) and
//     then fails; it never returns a half-updated tree.
//   - When the content and revision are unchanged Fetch writes nothing and
//     returns the previous artifact. A snapshot stays unchanged until the
//     second Fetch after the one that returned it; older ones are removed.
//   - Revision is the checkout's revision: "r<N>" from `svn info
//     --show-item revision` for an SVN working copy, "revno:<N>" from `brz
//     revno --tree` for a Bazaar branch or checkout, else the content digest
//     (an `svn export`, a plain folder, or when svn/brz is not installed).
//     Local edits not yet committed change Digest but not Revision: compare
//     Digest to know whether content changed.
//   - Ignored everywhere (copy, digest, watcher): the VCS folders .svn .bzr
//     .git .hg, editor files (*~, .*.swp, .*.swo, .*.swx, #*#, .#*) and
//     charter's own .charter-tmp-* files and .charter.lock.
//   - Symbolic links are followed only when they resolve inside the folder
//     (a link to a file is copied as a file, a link to a folder as a folder;
//     a link back to a folder being copied is a cycle and is skipped).
//     Links resolving outside the folder, into an ignored folder, or
//     nowhere are skipped silently: they are not part of the snapshot and
//     not part of the digest. Special files (sockets, FIFOs) are skipped.
//   - A file larger than Options.MaxFileSize (default 10 MiB) makes Fetch
//     fail with an error naming it; it is never read beyond the cap.
//   - Changes (source.Notifier) signals after a debounced burst of changes
//     (Options.Debounce, default 500ms of quiet, at most 10 debounce
//     periods after the first change), so the whole burst of an `svn up` is
//     one signal. Folders created later are watched too. Changes to ignored
//     paths and attribute-only changes do not signal. The watched folder
//     itself must stay: if it is removed (and recreated, say by a fresh
//     `svn checkout`), Changes signals once and Err says so; later changes
//     are seen only by Fetch, so recreate the Source.
//
// The digest of a folder without symbolic links equals state.Dir.Revision of
// the same folder.
package dir

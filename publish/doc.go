// Package publish turns a chart directory into a released chart: it
// packages it into a deterministic archive, signs and verifies Helm
// provenance files, and uploads archives to a chart repository while
// keeping its index.yaml complete.
//
// # Package
//
// Package writes NAME-VERSION.tgz with the content `helm package` writes
// (Helm's own chartutil.Save: top folder named after the chart,
// .helmignore honoured, subcharts under charts/ written unpacked, Chart.yaml
// re-serialised from its metadata), then normalises everything that is not
// content, so the same chart always gives byte-identical archives whatever
// the files' modification times, owners or permissions:
//
//   - entries sorted by name; regular files only, as Helm writes them;
//   - every entry's mtime is ArchiveModTime (the Unix epoch), mode 0644,
//     uid/gid 0, no user or group names;
//   - gzip header without file name or mtime, compression level
//     gzip.BestCompression. (Identical bytes are guaranteed for a given
//     build of charter; a different Go release could compress differently.)
//
// Charts are read with render.Load: symbolic links leaving the chart
// directory, devices and oversized charts are refused before anything is
// written.
//
// # Provenance
//
// Sign and Verify read and write Helm's provenance format
// (helm.sh/helm/v4/pkg/provenance): `helm verify` accepts what Sign writes
// and Verify accepts what `helm package --sign` writes. Verify fails with
// ErrUnknownKey when the signer is not in the keyring, ErrBadSignature when
// the signature does not check, and ErrDigestMismatch when the archive is
// not the one that was signed.
//
// # Release
//
// Release uploads an archive (and its .prov) to a repository and adds it to
// the repository's index.yaml, in a layout any Helm client reads: the index
// entry's URL is relative ("NAME-VERSION.tgz"). Destinations:
//
//	s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX],
//	s3+http(s)://HOST[:PORT]/BUCKET[/PREFIX]   object storage (source/bucket)
//	https://HOST/PATH, http://HOST/PATH          HTTP PUT (WebDAV-like servers)
//	file:///DIR                                 a folder a web server serves
//
// Guarantees:
//
//   - The archive and .prov are written before the index names them: a
//     client never sees an index entry whose archive is missing.
//   - Concurrent releases to one repository never lose each other's index
//     entries: index.yaml is replaced with a conditional write (If-Match on
//     its ETag, If-None-Match: * when it is new; an flock plus an atomic
//     rename for file://); when the condition fails the index is read again,
//     merged and written again, up to MaxAttempts times. On gs:// (whose XML
//     API ignores the conditions) and on HTTP servers that send no ETag the
//     check is a read just before the write, which narrows but does not close
//     the race.
//   - A version already in the index, or an archive of that name with other
//     content, is never overwritten unless Options.Force is set
//     (ErrAlreadyReleased). Releasing again after an interrupted release
//     (archive uploaded, index not updated) is allowed when the archive is
//     byte-identical. A forced release without a .prov removes the
//     replaced build's .prov, which could not verify the new archive.
//   - Credentials go only to the destination: for HTTP, basic auth is added
//     to requests for the destination's scheme, host and port and never to a
//     redirect elsewhere; errors and returned URLs are redacted.
package publish

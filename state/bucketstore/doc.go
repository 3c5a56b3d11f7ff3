// Package bucketstore is a state.Store on an object-store prefix (S3,
// MinIO, GCS): the CLI reads and edits a declared state kept in a bucket,
// the same locations source/bucket watches (see bucket.ParseURL).
//
// The Store keeps a working folder under Options.CacheDir with a copy of
// the prefix and the ETag each file was downloaded at. Dir refreshes it
// (one listing; only changed objects are downloaded) and opens it; an empty
// prefix is initialised as a new state directory, published by the first
// Edit.
//
// # Concurrent writers never lose a write
//
// Edit refreshes, applies fn, then publishes the difference with
// conditional requests only:
//
//   - a new file is put with If-None-Match: * (fails if someone created it);
//   - a changed file is put with If-Match: <the ETag it was read at>;
//   - a deleted file is removed after a stat shows the ETag it was read at.
//     S3 has no conditional delete everywhere, so a write landing between
//     the stat and the delete (milliseconds) is the one window left.
//
// When a condition fails (412 Precondition Failed, or the object vanished)
// Edit refreshes and calls fn again, up to 5 attempts; an error from fn on
// a retry (state.ErrExists when the other writer created the same release)
// is returned unchanged. Nothing is ever overwritten unconditionally. MinIO
// and AWS S3 honour both conditions. Google Cloud Storage's XML API honours
// If-Match and If-None-Match on reads only, so on gs:// the conditions are
// checked by a stat before each write: a narrower guarantee, with the same
// window as deletes.
//
// S3 has no multi-object transactions: an Edit touching several objects
// writes them one by one, supporting files (charts/, values/) before
// declarations (releases/), so a reader never sees a declaration before
// the files it references; a conflict half way leaves at most unreferenced
// supporting files behind, which the retry reuses.
//
// Every object written carries the change message as the metadata
// x-amz-meta-charter-change. Edit returns the new listing digest, the
// revision source/bucket reports for the same state.
//
// Edits from several processes sharing a cache folder are serialised by a
// lock file in the store's folder.
package bucketstore

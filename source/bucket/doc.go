// Package bucket reads a declared state from an S3-compatible object store:
// AWS S3, MinIO, or Google Cloud Storage through its S3-interoperable XML
// API with an HMAC key.
//
// # Locations
//
//	s3://BUCKET[/PREFIX]                   endpoint from Options.Endpoint, else AWS S3
//	gs://BUCKET[/PREFIX]                   https://storage.googleapis.com (or Options.Endpoint)
//	s3+http://HOST[:PORT]/BUCKET[/PREFIX]  that endpoint over http (MinIO on a LAN)
//	s3+https://HOST[:PORT]/BUCKET[/PREFIX] that endpoint over https
//
// The region is Options.Region or a "?region=NAME" query; empty lets the
// client ask the server once. The state is the objects under PREFIX/: the
// key PREFIX/releases/web.yaml is the file releases/web.yaml.
//
// Credentials: Options.AccessKey and Options.SecretKey (for GCS, an HMAC
// key's access ID and secret), else the AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN environment variables, else
// anonymous requests. Credentials in the URL are refused. They never appear
// in errors or String().
//
// # What Fetch guarantees
//
//   - One listing per poll: the Revision and Digest are both "sha256:" over
//     the sorted (key, ETag) pairs, so an unchanged prefix costs one request
//     (one per 1000 objects) and downloads nothing.
//   - Only what changed is downloaded: a new snapshot folder is built for
//     each new revision; objects whose ETag is unchanged are hard-linked
//     from the previous snapshot. Each download asks for the listed ETag
//     (If-Match), so an object rewritten during a Fetch makes it list again
//     rather than mix versions. A snapshot never changes once returned; the
//     previous one is kept until the next Fetch returns, older ones are
//     removed. A restarted process reuses the last snapshot in the cache.
//   - Keys are checked before anything is written: absolute keys, keys with
//     "..", "." or empty segments, backslashes or control characters, and a
//     key that is also another key's folder are refused with an error naming
//     the key. Folder markers ("dir/" with no content) are skipped.
//   - An object larger than Options.MaxFileSize (default 10 MiB) is an error
//     naming the key and its size, found from the listing: it is never
//     requested. Downloads stream to disk and stop at the cap anyway.
//   - Snapshots hold only regular files: objects cannot be symbolic links,
//     so nothing in a snapshot points outside it.
//
// # Why not go-getter
//
// go-getter fetches one URL into a folder; it has no listing, so it cannot
// compute a revision without downloading everything, cannot skip unchanged
// objects, cannot check sizes before downloading and cannot make the
// conditional writes state/bucketstore needs. Everything here goes through
// minio-go, one client for reading and writing.
package bucket

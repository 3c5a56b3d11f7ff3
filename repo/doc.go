// Package repo reads Helm chart repositories: it loads their index.yaml
// into a compact, immutable Index (Find, Search), fetches indexes and chart
// archives over https/http, from buckets (s3://, gs://, s3+http(s)://) and
// from file:// folders with a Client, and parses and resolves the chart
// references charter accepts (ParseRef, Resolve).
//
// Guarantees:
//
//   - LoadIndex streams the block-style YAML that `helm repo index`,
//     ChartMuseum and chart-releaser write, keeping only the fields charter
//     uses; anything else valid (flow style, anchors, JSON) is loaded by a
//     full parser under the same size cap. Entries with an invalid semantic
//     version or no name are skipped (listed in Index.Skipped), and control
//     characters and terminal escape sequences are removed from names,
//     versions, descriptions and keywords.
//   - Credentials of a Repository are sent only to its own scheme, host and
//     port: never after a redirect elsewhere or to plain http, and never to
//     chart URLs of another origin unless the repository sets
//     AllowCrossOrigin. Errors name the repository and its redacted URL,
//     never a secret.
//   - Fetch verifies the archive's sha256 against the index when the index
//     has a digest, and caps every download.
//
// Index values are never modified after LoadIndex returns them and may be
// shared between goroutines; the Client memoises them per URL and ETag.
package repo

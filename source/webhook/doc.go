// Package webhook receives push notifications from git hosts so the daemon
// fetches a source at once instead of at its next poll.
//
// Handler serves POST /hooks/NAME. A request is accepted (202, Trigger
// called once with NAME) only when it proves knowledge of NAME's secret in
// one of the styles git hosts use:
//
//   - GitHub: X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>
//   - Gitea, Forgejo, Gogs: X-Gitea-Signature, X-Forgejo-Signature or
//     X-Gogs-Signature: <hex HMAC-SHA256 of the body>
//   - GitLab: X-Gitlab-Token: <the secret itself>; unlike an HMAC it does
//     not cover the body, so use HTTPS between GitLab and the daemon
//
// Comparisons are constant-time. Other outcomes: 401 when no signature
// header is present or it does not match, 404 for an unknown NAME (or one
// whose secret is empty: an empty key would let anyone sign), 405 for a
// method other than POST, 413 for a body over 1 MiB. Secrets never appear
// in responses.
//
// The payload is not interpreted: any verified delivery (a push, a tag, a
// ping) triggers a fetch, and a source whose revision did not move fetches
// nothing more than one ls-remote. Replays of a genuine delivery are
// accepted; they only cause another such cheap fetch.
package webhook

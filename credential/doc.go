// Package credential keeps the credentials charter uses for chart
// repositories, git and buckets: a TOKEN (an access key, a user name) and a
// SECRET (its password or secret key), stored in the cluster as Secrets in
// charter's namespace (DefaultNamespace unless told otherwise), where the
// daemon reads them. Credentials are never written into the declared state:
// a repository there names a credential, the secret stays in the cluster.
//
// What it guarantees:
//   - A secret never leaves the package except through Credential.Secret:
//     a Credential's String, every fmt verb (%v, %+v, %#v, %s, %d…), and its
//     JSON and YAML forms show the name, token and creation time only, and
//     List never even reads the secret into a Credential. Errors never hold
//     a secret.
//   - Each credential is one Secret of type charter.sh/credential, labelled
//     owner=charter and charter.sh/kind=credential, named like the
//     credential. Secrets of other types are never read, listed, replaced
//     or deleted, even when their name matches.
//   - Add never replaces a credential: an explicit name that is taken is an
//     error; a default name (token-<first 8 characters of the token>) that is
//     taken gets a numeric suffix, also when two Adds race.
//   - Add creates the namespace when it is missing.
package credential

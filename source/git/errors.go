package git

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Error is a failed git operation. Its message names the redacted location
// and the reason, and never holds a credential; Unwrap gives go-git's
// error for errors.Is (transport.ErrAuthenticationRequired, ...), whose
// own message is not sanitised and must not be printed.
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

// Secrets lists the credentials of spec and creds that must never be
// shown, for SanitizeError.
func Secrets(spec Spec, password, token, passphrase string) []string {
	var out []string
	for _, s := range []string{spec.Password, password, token, passphrase} {
		if s != "" {
			out = append(out, s)
		}
	}
	if (spec.Scheme == "http" || spec.Scheme == "https") && spec.Password == "" && spec.Username != "" {
		out = append(out, spec.Username) // https://TOKEN@host: the user is the secret
	}
	return out
}

// SanitizeError turns err, from an operation op on the repository at
// location (already redacted), into an *Error whose message reads
// "git LOCATION: OP: REASON" with every secret replaced by "xxxxx".
func SanitizeError(location, op string, err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	msg := fmt.Sprintf("git %s: %s: %s", location, op, reason(err))
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return &Error{msg: msg, err: err}
}

// reason is err's message, made clearer for the failures users meet.
func reason(err error) string {
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		return "authentication required: credentials missing or wrong"
	case errors.Is(err, transport.ErrAuthorizationFailed):
		return "authorization failed: the credentials may not access this repository"
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return "repository not found (or the credentials may not see it)"
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return "the repository is empty"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out: " + err.Error()
	}
	msg := err.Error()
	if strings.Contains(msg, "unable to authenticate") {
		return "ssh authentication failed: the key is not accepted (" + msg + ")"
	}
	return msg
}

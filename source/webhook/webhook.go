package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
)

// MaxBody is the largest request body accepted.
const MaxBody = 1 << 20

// Prefix is the path under which hooks are served: Prefix + NAME.
const Prefix = "/hooks/"

// Handler verifies webhook deliveries and triggers fetches.
type Handler struct {
	// Secrets returns the secret of the hook NAME; ok is false for an
	// unknown NAME. It is called once per request, before the body is read.
	Secrets func(name string) (secret string, ok bool)
	// Trigger is called once per accepted delivery, from the request's
	// goroutine, before the response is written: it must not block (a
	// non-blocking send on a buffered channel, say).
	Trigger func(name string)
}

var _ http.Handler = (*Handler)(nil)

// signature headers carrying hex HMAC-SHA256 of the body, in the order
// they are consulted; GitHub's value has a "sha256=" prefix.
var hmacHeaders = []string{"X-Hub-Signature-256", "X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature"}

// ServeHTTP handles POST /hooks/NAME (see the package documentation).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok || name == "" || strings.Contains(name, "/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
		return
	}
	secret, ok := "", false
	if h.Secrets != nil {
		secret, ok = h.Secrets(name)
	}
	if !ok || secret == "" {
		http.Error(w, "unknown hook", http.StatusNotFound)
		return
	}
	if r.ContentLength > MaxBody {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read request body", http.StatusBadRequest)
		return
	}
	if !verify(r.Header, body, secret) {
		http.Error(w, "missing or invalid signature", http.StatusUnauthorized)
		return
	}
	if h.Trigger != nil {
		h.Trigger(name)
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "accepted\n")
}

// verify reports whether the first signature header present proves the
// secret.
func verify(hdr http.Header, body []byte, secret string) bool {
	for _, k := range hmacHeaders {
		v := hdr.Get(k)
		if v == "" {
			continue
		}
		if k == "X-Hub-Signature-256" {
			var ok bool
			if v, ok = strings.CutPrefix(v, "sha256="); !ok {
				return false
			}
		}
		got, err := hex.DecodeString(strings.TrimSpace(v))
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		return hmac.Equal(got, mac.Sum(nil))
	}
	if v := hdr.Get("X-Gitlab-Token"); v != "" {
		// Compare digests so that the time taken does not depend on the
		// secret's length either.
		a, b := sha256.Sum256([]byte(v)), sha256.Sum256([]byte(secret))
		return subtle.ConstantTimeCompare(a[:], b[:]) == 1
	}
	return false
}

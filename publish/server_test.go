package publish

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// putServer is an HTTP chart repository that accepts PUT, like a WebDAV
// server: GET serves what was PUT with a strong ETag; PUT honours If-Match
// and If-None-Match; with a user set, every request needs basic auth.
type putServer struct {
	user, pass string
	noETag     bool // send no ETag and ignore conditions (a plain server)

	mu    sync.Mutex
	files map[string][]byte
	auths []string // Authorization headers seen, in order
}

func newPutServer() *putServer { return &putServer{files: map[string][]byte{}} }

func etag(data []byte) string { return `"` + sha256Hex(data)[:16] + `"` }

func (s *putServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	if s.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != s.user || p != s.pass {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
	}
	name := strings.TrimPrefix(r.URL.Path, "/")
	cur, exists := s.files[name]
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !exists {
			http.NotFound(w, r)
			return
		}
		if !s.noETag {
			w.Header().Set("ETag", etag(cur))
		}
		w.Write(cur)
	case http.MethodPut:
		if !s.noETag {
			if m := r.Header.Get("If-Match"); m != "" && (!exists || m != etag(cur)) {
				http.Error(w, "precondition failed", http.StatusPreconditionFailed)
				return
			}
			if r.Header.Get("If-None-Match") == "*" && exists {
				http.Error(w, "precondition failed", http.StatusPreconditionFailed)
				return
			}
		}
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.files[name] = data
		w.Header().Set("ETag", etag(data))
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if !exists {
			http.NotFound(w, r)
			return
		}
		delete(s.files, name)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *putServer) file(t testing.TB, name string) []byte {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.files[name])
}

func (s *putServer) put(name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = bytes.Clone(data)
}

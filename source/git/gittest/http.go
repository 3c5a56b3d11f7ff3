package gittest

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// HTTPServer serves every repository in a folder over git's smart HTTP
// protocol, as http://127.0.0.1:PORT/NAME.git, pushes included.
type HTTPServer struct {
	// URL is the server's base URL, without a trailing slash.
	URL string

	mu   sync.Mutex
	reqs Requests
}

// Requests counts the requests an HTTPServer received, by kind.
type Requests struct {
	InfoRefs     int // GET …/info/refs (the advertisement: ls-remote, and the first leg of fetch and push)
	UploadPack   int // POST …/git-upload-pack (a fetch)
	ReceivePack  int // POST …/git-receive-pack (a push)
	Unauthorized int // requests refused for wrong or missing credentials
}

// ServeHTTP starts git http-backend for root on 127.0.0.1. With user set,
// every request must carry basic auth user:password.
func ServeHTTP(t testing.TB, root, user, password string) *HTTPServer {
	t.Helper()
	Require(t)
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	remoteUser := user
	if remoteUser == "" {
		remoteUser = "anonymous" // http-backend allows pushes by a known user
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"REMOTE_USER=" + remoteUser,
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=/dev/null",
		},
		InheritEnv: []string{"PATH"},
	}
	s := &HTTPServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
				s.count(func(q *Requests) { q.Unauthorized++ })
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/info/refs"):
			s.count(func(q *Requests) { q.InfoRefs++ })
		case strings.HasSuffix(r.URL.Path, "/git-upload-pack"):
			s.count(func(q *Requests) { q.UploadPack++ })
		case strings.HasSuffix(r.URL.Path, "/git-receive-pack"):
			s.count(func(q *Requests) { q.ReceivePack++ })
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *HTTPServer) count(f func(*Requests)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.reqs)
}

// Requests returns the counts so far.
func (s *HTTPServer) Requests() Requests {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

// RepoURL is the URL of the repository NAME.git.
func (s *HTTPServer) RepoURL(repo *Repo) string { return s.URL + "/" + repo.Name }

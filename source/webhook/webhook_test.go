package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

const secret = "s3cr3t-hook-value"

func sign(key string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

func TestHandler(t *testing.T) {
	var (
		mu        sync.Mutex
		triggered []string
	)
	h := &Handler{
		Secrets: func(name string) (string, bool) {
			s, ok := map[string]string{"state": secret, "empty": ""}[name]
			return s, ok
		},
		Trigger: func(name string) {
			mu.Lock()
			triggered = append(triggered, name)
			mu.Unlock()
		},
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	push := []byte(`{"ref":"refs/heads/main","after":"4b825dc642cb6eb9a060e54bf8d69288fbee4904"}`)
	tampered := bytes.Replace(push, []byte("main"), []byte("evil"), 1)
	big := bytes.Repeat([]byte("x"), MaxBody+1)
	for _, tc := range []struct {
		name    string
		method  string
		path    string
		body    []byte
		chunked bool // no Content-Length: the limit applies while reading
		header  map[string]string
		want    int
	}{
		{name: "GitHub signature", body: push, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, push)}, want: 202},
		{name: "GitHub replay of the same delivery", body: push, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, push)}, want: 202},
		{name: "GitHub replay with a tampered body", body: tampered, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, push)}, want: 401},
		{name: "GitHub signature with the wrong secret", body: push, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign("guess", push)}, want: 401},
		{name: "GitHub signature without sha256= prefix", body: push, header: map[string]string{"X-Hub-Signature-256": sign(secret, push)}, want: 401},
		{name: "GitHub signature not hex", body: push, header: map[string]string{"X-Hub-Signature-256": "sha256=zz"}, want: 401},
		{name: "Gitea signature", body: push, header: map[string]string{"X-Gitea-Signature": sign(secret, push)}, want: 202},
		{name: "Gitea replay with a tampered body", body: tampered, header: map[string]string{"X-Gitea-Signature": sign(secret, push)}, want: 401},
		{name: "Forgejo signature", body: push, header: map[string]string{"X-Forgejo-Signature": sign(secret, push)}, want: 202},
		{name: "Gogs signature", body: push, header: map[string]string{"X-Gogs-Signature": sign(secret, push)}, want: 202},
		{name: "GitLab token", body: push, header: map[string]string{"X-Gitlab-Token": secret}, want: 202},
		{name: "GitLab replay with a tampered body", body: tampered, header: map[string]string{"X-Gitlab-Token": secret}, want: 202},
		{name: "GitLab wrong token", body: push, header: map[string]string{"X-Gitlab-Token": secret + "x"}, want: 401},
		{name: "GitLab token prefix", body: push, header: map[string]string{"X-Gitlab-Token": secret[:5]}, want: 401},
		{name: "a wrong HMAC is not rescued by a GitLab token", body: push, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign("guess", push), "X-Gitlab-Token": secret}, want: 401},
		{name: "no signature", body: push, want: 401},
		{name: "unknown hook", path: "/hooks/other", body: push, header: map[string]string{"X-Gitlab-Token": secret}, want: 404},
		{name: "hook with an empty secret", path: "/hooks/empty", body: push, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign("", push)}, want: 404},
		{name: "no hook name", path: "/hooks/", body: push, want: 404},
		{name: "nested path", path: "/hooks/state/x", body: push, header: map[string]string{"X-Gitlab-Token": secret}, want: 404},
		{name: "outside /hooks/", path: "/state", body: push, header: map[string]string{"X-Gitlab-Token": secret}, want: 404},
		{name: "GET", method: "GET", header: map[string]string{"X-Gitlab-Token": secret}, want: 405},
		{name: "PUT", method: "PUT", body: push, header: map[string]string{"X-Gitlab-Token": secret}, want: 405},
		{name: "body over 1 MiB", body: big, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, big)}, want: 413},
		{name: "chunked body over 1 MiB", body: big, chunked: true, header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, big)}, want: 413},
		{name: "body of exactly 1 MiB", body: big[:MaxBody], header: map[string]string{"X-Hub-Signature-256": "sha256=" + sign(secret, big[:MaxBody])}, want: 202},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			triggered = nil
			mu.Unlock()
			method, path := tc.method, tc.path
			if method == "" {
				method = "POST"
			}
			if path == "" {
				path = "/hooks/state"
			}
			var body io.Reader = bytes.NewReader(tc.body)
			if tc.chunked {
				body = io.MultiReader(body) // hides the length from the client
			}
			req, err := http.NewRequest(method, srv.URL+path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(string(got)), tc.want)
			}
			if strings.Contains(string(got), secret) || strings.Contains(strings.Join(headerValues(resp.Header), " "), secret) {
				t.Errorf("response shows the secret: %q", got)
			}
			if tc.want == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("405 without Allow: POST")
			}
			mu.Lock()
			defer mu.Unlock()
			want := 0
			if tc.want == 202 {
				want = 1
			}
			if len(triggered) != want || (want == 1 && triggered[0] != "state") {
				t.Errorf("Trigger calls %q, want %d for hook state", triggered, want)
			}
		})
	}
}

func headerValues(h http.Header) []string {
	var out []string
	for _, v := range h {
		out = append(out, v...)
	}
	return out
}

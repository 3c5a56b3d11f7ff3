package testenv_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/charter-sh/charter/internal/testenv"
)

func TestStartRegistry(t *testing.T) {
	client := &http.Client{Timeout: 5 * time.Second}
	status := func(t *testing.T, host, user, pass string) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+host+"/v2/", nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /v2/: %v", err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Docker-Distribution-Api-Version"); got != "registry/2.0" {
			t.Errorf("Docker-Distribution-Api-Version %q: want registry/2.0", got)
		}
		return resp.StatusCode
	}
	var anon, authed string
	t.Run("anonymous registry answers /v2/ on loopback", func(t *testing.T) {
		anon = testenv.StartRegistry(t)
		if !strings.HasPrefix(anon, "127.0.0.1:") {
			t.Errorf("host %q: want 127.0.0.1:PORT", anon)
		}
		if got := status(t, anon, "", ""); got != http.StatusOK {
			t.Errorf("anonymous /v2/: %d, want 200", got)
		}
	})
	if anon == "" {
		return // skipped: no binary
	}
	t.Run("registry with htpasswd accepts only its credentials", func(t *testing.T) {
		authed = testenv.StartRegistryWithAuth(t, "ci", "s3cret-pw")
		if authed == anon {
			t.Fatalf("two registries on %s", anon)
		}
		for _, tc := range []struct {
			name, user, pass string
			want             int
		}{
			{"anonymous", "", "", http.StatusUnauthorized},
			{"wrong password", "ci", "wrong", http.StatusUnauthorized},
			{"wrong user", "other", "s3cret-pw", http.StatusUnauthorized},
			{"right credentials", "ci", "s3cret-pw", http.StatusOK},
		} {
			if got := status(t, authed, tc.user, tc.pass); got != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
			}
		}
	})
	t.Run("registries are gone after their tests", func(t *testing.T) {
		for _, host := range []string{anon, authed} {
			resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + host + "/v2/")
			if err == nil {
				resp.Body.Close()
				t.Errorf("registry still answers at %s after its test ended: %s", host, resp.Status)
			}
		}
	})
}

func TestStartRegistryWithoutBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("StartRegistry skips everything with -short")
	}
	t.Setenv(testenv.ToolsEnv, t.TempDir())
	for _, e2e := range []string{"", "1"} {
		t.Setenv(testenv.E2EEnv, e2e)
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			testenv.StartRegistry(rec)
		}()
		<-done
		got := rec.skipped
		if e2e == "1" {
			got = rec.failed
		}
		if !strings.Contains(got, "run `make tools`") || (rec.skipped != "") == (rec.failed != "") {
			t.Errorf("%s=%q: skipped %q, failed %q; want to %s, telling to run make tools",
				testenv.E2EEnv, e2e, rec.skipped, rec.failed, map[string]string{"": "skip", "1": "fail"}[e2e])
		}
	}
}

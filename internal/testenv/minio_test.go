package testenv_test

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/charter-sh/charter/internal/testenv"
)

func TestStartMinIO(t *testing.T) {
	var endpoint string
	t.Run("server is ready, on loopback, with the returned credentials", func(t *testing.T) {
		var ak, sk string
		endpoint, ak, sk = testenv.StartMinIO(t)
		if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
			t.Errorf("endpoint %q: want http://127.0.0.1:PORT", endpoint)
		}
		if ak == "" || len(sk) < 8 || strings.Contains(sk, ak) {
			t.Errorf("credentials %q/%q: want an access key and a distinct secret of 8+ characters", ak, sk)
		}
		client := &http.Client{Timeout: 5 * time.Second}
		resp, err := client.Get(endpoint + "/minio/health/ready")
		if err != nil {
			t.Fatalf("readiness: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("readiness: %s, want 200 OK", resp.Status)
		}
		// The returned credentials work, and other ones are refused.
		host := strings.TrimPrefix(endpoint, "http://")
		for _, tc := range []struct {
			secret string
			ok     bool
		}{{sk, true}, {sk + "x", false}} {
			c, err := minio.New(host, &minio.Options{Creds: credentials.NewStaticV4(ak, tc.secret, ""), MaxRetries: 1})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = c.ListBuckets(ctx)
			cancel()
			if (err == nil) != tc.ok {
				t.Errorf("ListBuckets with the right secret=%v: %v", tc.ok, err)
			}
		}
	})
	if endpoint == "" {
		return // skipped: no binary
	}
	t.Run("server is gone after the test", func(t *testing.T) {
		client := &http.Client{Timeout: 2 * time.Second}
		resp, err := client.Get(endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			t.Errorf("MinIO still answers at %s after its test ended: %s", endpoint, resp.Status)
		}
	})
}

func TestStartMinIOServersAreIndependent(t *testing.T) {
	e1, ak1, sk1 := testenv.StartMinIO(t)
	e2, ak2, sk2 := testenv.StartMinIO(t)
	if e1 == e2 || ak1 == ak2 || sk1 == sk2 {
		t.Errorf("two servers share an endpoint or credentials: %s %s/%s, %s %s/%s", e1, ak1, sk1, e2, ak2, sk2)
	}
	testenv.MakeBucket(t, e1, ak1, sk1, "only-on-one")
	for _, s := range []struct {
		endpoint, ak, sk string
		want             bool
	}{{e1, ak1, sk1, true}, {e2, ak2, sk2, false}} {
		c, err := minio.New(strings.TrimPrefix(s.endpoint, "http://"), &minio.Options{Creds: credentials.NewStaticV4(s.ak, s.sk, "")})
		if err != nil {
			t.Fatal(err)
		}
		ok, err := c.BucketExists(context.Background(), "only-on-one")
		if err != nil || ok != s.want {
			t.Errorf("bucket on %s: exists %v (%v), want %v", s.endpoint, ok, err, s.want)
		}
	}
}

// recorder is a testing.TB that records Skip and Fatalf and ends the
// goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Skip(args ...any) {
	r.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestStartMinIOWithoutBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("StartMinIO skips everything with -short")
	}
	t.Setenv(testenv.ToolsEnv, t.TempDir())
	for _, e2e := range []string{"", "1"} {
		t.Setenv(testenv.E2EEnv, e2e)
		rec := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			testenv.StartMinIO(rec)
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

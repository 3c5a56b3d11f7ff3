package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// MinIOBinary is the MinIO server's file name in the tools cache.
const MinIOBinary = "minio"

// minioStartTimeout bounds one MinIO start, readiness included.
const minioStartTimeout = time.Minute

// StartMinIO runs a MinIO server for t and returns its endpoint
// ("http://127.0.0.1:PORT") and its root credentials, random for each
// server. The server listens on free loopback ports only, keeps its data in
// a temporary folder, answers /minio/health/ready when StartMinIO returns,
// and is killed when t ends (its data folder removed).
//
// Without the binary (ToolsDir()/minio, built by `make tools`) t is
// skipped, or fails when CHARTER_E2E=1. With -short t is skipped.
func StartMinIO(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	bin := Tool(t, MinIOBinary, "MinIO server")
	accessKey = "charter-" + strings.ToLower(rand.Text()[:8])
	secretKey = rand.Text()
	dir := t.TempDir()

	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var p *process
		p, endpoint, err = startMinIO(bin, dir, accessKey, secretKey, attempt)
		if err == nil {
			t.Cleanup(func() {
				if !stopProcess(p, syscall.SIGTERM, stopGrace) && !stopProcess(p, syscall.SIGKILL, 5*time.Second) {
					t.Errorf("testenv: MinIO (pid %d) still running after SIGKILL", p.pid)
				}
			})
			return endpoint, accessKey, secretKey
		}
		if !strings.Contains(err.Error(), errPortInUse.Error()) {
			break
		}
	}
	t.Fatalf("testenv: start MinIO: %v", err)
	return "", "", ""
}

// MakeBucket creates a bucket on a server StartMinIO returned. The bucket
// stores and sources never create buckets: that is the operator's job.
func MakeBucket(t testing.TB, endpoint, accessKey, secretKey, bucket string) {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatalf("testenv: make bucket %s: %v", bucket, err)
	}
	c, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, ""), Secure: u.Scheme == "https"})
	if err != nil {
		t.Fatalf("testenv: make bucket %s: %v", bucket, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testenv: make bucket %s: %v", bucket, err)
	}
}

// startMinIO starts one server on new free ports and waits until it is
// ready. On error nothing is left running.
func startMinIO(bin, dir, accessKey, secretKey string, attempt int) (*process, string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, "", err
	}
	api := "127.0.0.1:" + strconv.Itoa(ports[0])
	logPath := filepath.Join(dir, fmt.Sprintf("minio-%d.log", attempt))
	p, err := startProcess(component{
		name:   "minio",
		binary: bin,
		args: []string{"server", "--address", api,
			"--console-address", "127.0.0.1:" + strconv.Itoa(ports[1]),
			filepath.Join(dir, "data")},
		env: []string{
			"MINIO_ROOT_USER=" + accessKey,
			"MINIO_ROOT_PASSWORD=" + secretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_CONFIG_ENV_FILE=", // never read a host's /etc/default/minio
		},
		logPath: logPath,
	}, false)
	if err != nil {
		return nil, "", err
	}
	endpoint := "http://" + api
	if err := waitMinIOReady(p, endpoint); err != nil {
		stopProcess(p, syscall.SIGKILL, 5*time.Second)
		tail := logTail(logPath, 20)
		if strings.Contains(tail, "address already in use") {
			return nil, "", fmt.Errorf("%w: %v", errPortInUse, err)
		}
		return nil, "", fmt.Errorf("%w; log %s ends with:\n%s", err, logPath, tail)
	}
	return p, endpoint, nil
}

// waitMinIOReady polls the server until it is ready, the process exits or
// minioStartTimeout passes.
func waitMinIOReady(p *process, endpoint string) error {
	return waitFor(p, "minio", minioStartTimeout, func(ctx context.Context, client *http.Client) (int, error) {
		// Ready once the health check says so and the S3 API answers an
		// anonymous ListBuckets with a refusal rather than 503 (it answers
		// 503 while its IAM subsystem starts, after the health check passes).
		status, err := getStatus(ctx, client, endpoint+"/minio/health/ready")
		if err != nil || status != http.StatusOK {
			return status, err
		}
		status, err = getStatus(ctx, client, endpoint+"/")
		if err == nil && status == http.StatusForbidden {
			return http.StatusOK, nil
		}
		return status, err
	})
}

// waitFor polls probe every 50ms until it answers 200 OK, the process exits
// or timeout passes; the error names what and its last answer.
func waitFor(p *process, what string, timeout time.Duration, probe func(context.Context, *http.Client) (int, error)) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		if p.exited() {
			return fmt.Errorf("%s %s before it was ready", what, p.exitStatus())
		}
		status, err := probe(ctx, client)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = http.StatusText(status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (last answer: %s)", what, timeout, last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func getStatus(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryBinary is the OCI registry's file name in the tools cache (CNCF
// Distribution's `registry`, built by `make tools`).
const RegistryBinary = "registry"

// registryStartTimeout bounds one registry start, readiness included.
const registryStartTimeout = 30 * time.Second

// StartRegistry runs an anonymous OCI registry (CNCF Distribution) for t
// and returns its host, "127.0.0.1:PORT", served over plain http. It keeps
// its blobs in a temporary folder, answers /v2/ when StartRegistry returns
// and is killed when t ends.
//
// Without the binary (ToolsDir()/registry, built by `make tools`) t is
// skipped, or fails when CHARTER_E2E=1. With -short t is skipped.
func StartRegistry(t testing.TB) (host string) {
	t.Helper()
	return startRegistry(t, "", "")
}

// StartRegistryWithAuth is StartRegistry with HTTP basic authentication:
// every request needs username and password (checked against a bcrypt
// htpasswd file); others get 401.
func StartRegistryWithAuth(t testing.TB, username, password string) (host string) {
	t.Helper()
	if username == "" || password == "" || strings.ContainsAny(username, ":\n") {
		t.Fatalf("testenv: registry credentials: want a username without ':' and a password")
	}
	return startRegistry(t, username, password)
}

func startRegistry(t testing.TB, username, password string) string {
	t.Helper()
	bin := Tool(t, RegistryBinary, "OCI registry")
	dir := t.TempDir()
	htpasswd := ""
	if username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("testenv: registry htpasswd: %v", err)
		}
		htpasswd = filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatalf("testenv: registry htpasswd: %v", err)
		}
	}
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var p *process
		var host string
		p, host, err = startRegistryOnce(bin, dir, htpasswd, attempt)
		if err == nil {
			t.Cleanup(func() {
				if !stopProcess(p, syscall.SIGTERM, stopGrace) && !stopProcess(p, syscall.SIGKILL, 5*time.Second) {
					t.Errorf("testenv: registry (pid %d) still running after SIGKILL", p.pid)
				}
			})
			return host
		}
		if !strings.Contains(err.Error(), errPortInUse.Error()) {
			break
		}
	}
	t.Fatalf("testenv: start registry: %v", err)
	return ""
}

// registryConfig is the registry's configuration: loopback only, blobs in
// dir/data, no access log, optional htpasswd authentication.
func registryConfig(dir, addr, htpasswd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 0.1\n")
	fmt.Fprintf(&b, "log:\n  level: warn\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&b, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", strconv.Quote(filepath.Join(dir, "data")))
	fmt.Fprintf(&b, "http:\n  addr: %s\n  secret: %s\n", strconv.Quote(addr), strconv.Quote(rand.Text()))
	if htpasswd != "" {
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: charter-test\n    path: %s\n", strconv.Quote(htpasswd))
	}
	return b.String()
}

// startRegistryOnce starts one registry on a new free port and waits until
// it answers. On error nothing is left running.
func startRegistryOnce(bin, dir, htpasswd string, attempt int) (*process, string, error) {
	ports, err := freePorts(1)
	if err != nil {
		return nil, "", err
	}
	host := "127.0.0.1:" + strconv.Itoa(ports[0])
	config := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
	if err := os.WriteFile(config, []byte(registryConfig(dir, host, htpasswd)), 0o600); err != nil {
		return nil, "", fmt.Errorf("write registry config: %w", err)
	}
	logPath := filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
	p, err := startProcess(component{
		name:   "registry",
		binary: bin,
		args:   []string{"serve", config},
		env: []string{
			"OTEL_SDK_DISABLED=true", // no telemetry export attempts
			"OTEL_TRACES_EXPORTER=none",
		},
		logPath: logPath,
	}, false)
	if err != nil {
		return nil, "", err
	}
	want := http.StatusOK
	if htpasswd != "" {
		want = http.StatusUnauthorized
	}
	if err := waitRegistryReady(p, "http://"+host+"/v2/", want); err != nil {
		stopProcess(p, syscall.SIGKILL, 5*time.Second)
		tail := logTail(logPath, 20)
		if strings.Contains(tail, "address already in use") {
			return nil, "", fmt.Errorf("%w: %v", errPortInUse, err)
		}
		return nil, "", fmt.Errorf("%w; log %s ends with:\n%s", err, logPath, tail)
	}
	return p, host, nil
}

// waitRegistryReady polls /v2/ until it answers want (200, or 401 with
// authentication), the process exits or registryStartTimeout passes.
func waitRegistryReady(p *process, url string, want int) error {
	return waitFor(p, "registry", registryStartTimeout, func(ctx context.Context, client *http.Client) (int, error) {
		status, err := getStatus(ctx, client, url)
		if err == nil && status == want {
			return http.StatusOK, nil
		}
		return status, err
	})
}

package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"
)

// New starts a control plane that belongs to t alone and stops it when t
// ends. Tests that disrupt the control plane (StopAPIServer) use it instead
// of Get, so the tests sharing the binary's control plane never notice.
// Like Get, it skips t with -short or when the tools are missing, and fails
// t instead when CHARTER_E2E=1. It does not need TestMain to call Main.
func New(t testing.TB) *Env {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the control plane; skipped with -short")
	}
	if err := CheckTools(ToolsDir()); err != nil {
		if os.Getenv(E2EEnv) == "1" {
			t.Fatalf("testenv: %v (%s=1 requires the control plane)", err, E2EEnv)
		}
		t.Skip(err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), defaultStartTimeout)
	defer cancel()
	begin := time.Now()
	env, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("testenv: start a dedicated control plane: %v", err)
	}
	t.Logf("testenv: dedicated control plane started in %s", time.Since(begin).Round(100*time.Millisecond))
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return env
}

// apiserver returns the kube-apiserver process and its index in e.procs.
// e.mu must be held.
func (e *Env) apiserver() (int, *process, error) {
	for i, p := range e.procs {
		if p.name == binAPIServer {
			return i, p, nil
		}
	}
	return 0, nil, errors.New("this environment has no kube-apiserver process")
}

// StopAPIServer stops the kube-apiserver (SIGTERM, then SIGKILL if it is
// still running after a few seconds) and returns once it has exited. etcd,
// the controllers, the scheduler and kwok keep running; clients get
// "connection refused" until StartAPIServer. Stopping a stopped API server
// does nothing.
func (e *Env) StopAPIServer() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, p, err := e.apiserver()
	if err != nil {
		return err
	}
	if stopProcess(p, syscall.SIGTERM, stopGrace) || stopProcess(p, syscall.SIGKILL, 5*time.Second) {
		return nil
	}
	return fmt.Errorf("stop kube-apiserver (pid %d): still running after SIGKILL", p.pid)
}

// StartAPIServer starts the kube-apiserver again with the flags it was first
// started with — the same port, certificates and etcd, and so the same data
// — and returns once it answers /readyz, so Kubeconfig, RESTConfig and
// clients created before keep working. It does nothing while the API server
// runs. ctx bounds the wait (3 minutes when it has no deadline).
func (e *Env) StartAPIServer(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	i, old, err := e.apiserver()
	if err != nil {
		return err
	}
	if !old.exited() {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	client, err := e.restartProbeClient()
	if err != nil {
		return err
	}
	// The port was ours a moment ago; a socket of the old process may
	// linger for a moment, so a bind failure is retried, not reported.
	for attempt := 1; ; attempt++ {
		p, err := startProcess(old.comp, e.detach)
		if err != nil {
			return err
		}
		e.procs[i] = p
		if err := writeState(e.Dir, e.procs); err != nil {
			return err
		}
		s := &starter{dir: e.Dir, procs: []*process{p}}
		err = s.waitFor(ctx, "kube-apiserver /readyz", p, func(ctx context.Context) error {
			return httpOK(ctx, client, e.host+"/readyz")
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, errPortInUse) || attempt == 5 {
			return fmt.Errorf("restart kube-apiserver: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("restart kube-apiserver: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// restartProbeClient is an HTTP client with the admin certificate, trusting
// the environment's CA.
func (e *Env) restartProbeClient() (*http.Client, error) {
	pair, err := tls.X509KeyPair(e.admin.certPEM, e.admin.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.caPEM) {
		return nil, errors.New("load the environment's CA certificate: no certificate found")
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		},
	}, nil
}

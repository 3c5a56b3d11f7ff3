package testenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/tools/clientcmd"
)

func TestNamespacePrefix(t *testing.T) {
	tests := map[string]struct {
		testName string
		want     string
	}{
		"simple":                   {"TestApply", "testapply-"},
		"subtest separators":       {"TestApply/prunes_removed_objects", "testapply-prunes-removed-objects-"},
		"runs of symbols":          {"Test__X//y", "test-x-y-"},
		"leading digit":            {"1st/case", "test-1st-case-"},
		"only symbols":             {"///", "test-"},
		"long names are cut":       {strings.Repeat("abcdefghij", 10), "abcdefghijabcdefghijabcdefghijabcdefghij-"},
		"cut never ends in dash":   {strings.Repeat("a", 39) + "/bcd", strings.Repeat("a", 39) + "-"},
		"upper case is lowered":    {"TestHTTPServer", "testhttpserver-"},
		"non ascii is a separator": {"Test/über", "test-ber-"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := namespacePrefix(tc.testName)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("namespacePrefix(%q) (-want +got):\n%s", tc.testName, diff)
			}
			if len(got)+5 > 63 {
				t.Errorf("prefix %q leaves no room for the random suffix in a 63-character name", got)
			}
		})
	}
}

func TestCheckTools(t *testing.T) {
	complete := func(t *testing.T) string {
		dir := t.TempDir()
		for _, name := range requiredBinaries {
			writeFile(t, filepath.Join(dir, name), "#!/bin/sh\n", 0o755)
		}
		writeFile(t, filepath.Join(dir, StagesDir, "pod-ready.yaml"), "kind: Stage\n", 0o644)
		return dir
	}
	tests := map[string]struct {
		breakIt  func(t *testing.T, dir string)
		wantText string // empty: no error
	}{
		"complete cache passes": {
			breakIt: func(*testing.T, string) {},
		},
		"missing binary is named": {
			breakIt:  func(t *testing.T, dir string) { removeFile(t, filepath.Join(dir, binAPIServer)) },
			wantText: "no executable kube-apiserver; run `make tools`",
		},
		"non-executable binary counts as missing": {
			breakIt:  func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, binKwok), "x", 0o644) },
			wantText: "no executable kwok",
		},
		"missing kwok stages": {
			breakIt:  func(t *testing.T, dir string) { removeFile(t, filepath.Join(dir, StagesDir, "pod-ready.yaml")) },
			wantText: "no kwok stages in kwok-stages; run `make tools`",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dir := complete(t)
			tc.breakIt(t, dir)
			err := CheckTools(dir)
			if tc.wantText == "" {
				if err != nil {
					t.Fatalf("CheckTools: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrToolsMissing) {
				t.Fatalf("CheckTools error = %v, want one wrapping ErrToolsMissing", err)
			}
			if !strings.Contains(err.Error(), tc.wantText) || !strings.Contains(err.Error(), dir) {
				t.Errorf("CheckTools error = %q, want it to name %s and contain %q", err, dir, tc.wantText)
			}
		})
	}
}

func TestStartWithoutToolsFailsBeforeCreatingAnything(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cp")
	_, err := Start(context.Background(), Options{Dir: dir, Tools: t.TempDir()})
	if !errors.Is(err, ErrToolsMissing) {
		t.Fatalf("Start error = %v, want ErrToolsMissing", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Start created %s although it failed: %v", dir, err)
	}
}

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	certs, err := writePKI(dir, "https://127.0.0.1:6443")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(certs.ca.cert)

	serving := readCert(t, filepath.Join(dir, "apiserver.crt"))
	for _, host := range []string{"127.0.0.1", "localhost", "kubernetes.default.svc", "10.96.0.1"} {
		if _, err := serving.Verify(x509.VerifyOptions{DNSName: host, Roots: roots}); err != nil {
			t.Errorf("serving certificate does not verify for %s: %v", host, err)
		}
	}

	clients := map[string]struct {
		file string
		want []string // CN then organizations
	}{
		"admin is a cluster admin":             {"admin.crt", []string{"charter-admin", "system:masters"}},
		"controller manager has its RBAC user": {"", []string{"system:kube-controller-manager"}},
		"scheduler has its RBAC user":          {"", []string{"system:kube-scheduler"}},
	}
	for name, tc := range clients {
		t.Run(name, func(t *testing.T) {
			var cert *x509.Certificate
			if tc.file != "" {
				cert = readCert(t, filepath.Join(dir, tc.file))
			} else {
				cert = kubeconfigCert(t, dir, tc.want[0])
			}
			got := append([]string{cert.Subject.CommonName}, cert.Subject.Organization...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("subject (-want +got):\n%s", diff)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("client certificate does not verify: %v", err)
			}
		})
	}

	for _, name := range []string{"ca.key", "apiserver.key", "admin.key", "sa.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %o, want 600", name, perm)
		}
	}
}

func TestLogTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	var lines []string
	for i := range 100 {
		lines = append(lines, strings.Repeat("x", i))
	}
	writeFile(t, path, strings.Join(lines, "\n")+"\n", 0o644)
	got := logTail(path, 3)
	want := strings.Join(lines[97:], "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("logTail (-want +got):\n%s", diff)
	}
}

func TestShutdownRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious.txt")
	writeFile(t, keep, "data", 0o644)
	err := Shutdown(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "has no "+StateFile) {
		t.Fatalf("Shutdown error = %v, want refusal naming %s", err, StateFile)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("Shutdown removed files of a folder it does not own: %v", err)
	}
}

func TestShutdownIgnoresReusedPIDs(t *testing.T) {
	dir := t.TempDir()
	// Our own PID, recorded as running another binary: a recycled PID.
	self := &process{name: "etcd", binary: "/nonexistent/etcd", pid: os.Getpid()}
	if err := writeState(dir, []*process{self}); err != nil {
		t.Fatal(err)
	}
	running, err := Running(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(running) != 0 {
		t.Fatalf("Running = %v, want none: the PID runs a different binary", running)
	}
	if err := Shutdown(context.Background(), dir); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Shutdown left %s behind", dir)
	}
}

func TestFreePortsAreDistinctAndBindable(t *testing.T) {
	ports, err := freePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if seen[p] {
			t.Errorf("port %d returned twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Errorf("port %d is not free: %v", p, err)
			continue
		}
		l.Close()
	}
}

func writeFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseCert(t, data)
}

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// kubeconfigCert returns the client certificate of the component kubeconfig
// whose certificate has common name cn.
func kubeconfigCert(t *testing.T, dir, cn string) *x509.Certificate {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		cfg, err := clientcmd.LoadFromFile(f)
		if err != nil {
			t.Fatalf("load %s: %v", f, err)
		}
		for _, auth := range cfg.AuthInfos {
			cert := parseCert(t, auth.ClientCertificateData)
			if cert.Subject.CommonName == cn {
				return cert
			}
		}
	}
	t.Fatalf("no kubeconfig in %s has a client certificate for %s", dir, cn)
	return nil
}

// fakeTools returns a tools folder whose binaries are shell scripts: etcd
// runs etcdScript, everything else sleeps as a well-behaved daemon would.
func fakeTools(t *testing.T, etcdScript string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range requiredBinaries {
		writeFile(t, filepath.Join(dir, name), "#!/bin/sh\nexec sleep 60\n", 0o755)
	}
	writeFile(t, filepath.Join(dir, binEtcd), "#!/bin/sh\n"+etcdScript, 0o755)
	writeFile(t, filepath.Join(dir, StagesDir, "pod-ready.yaml"), "kind: Stage\n", 0o644)
	return dir
}

func TestStartFailure(t *testing.T) {
	tests := map[string]struct {
		etcdScript   string
		wantAttempts int
		wantInError  []string
	}{
		"crash reports the component and its log tail": {
			etcdScript:   "echo attempt >> \"$COUNTER\"\necho 'fatal: cannot open data dir' >&2\nexit 3\n",
			wantAttempts: 1,
			wantInError:  []string{"etcd exit status 3", "fatal: cannot open data dir"},
		},
		"port taken is retried on new ports": {
			etcdScript:   "echo attempt >> \"$COUNTER\"\necho 'listen tcp 127.0.0.1:2379: bind: address already in use' >&2\nexit 1\n",
			wantAttempts: startAttempts,
			wantInError:  []string{"address already in use"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			counter := filepath.Join(t.TempDir(), "attempts")
			t.Setenv("COUNTER", counter)
			dir := filepath.Join(t.TempDir(), "cp")
			_, err := Start(t.Context(), Options{Dir: dir, Tools: fakeTools(t, tc.etcdScript)})
			if err == nil {
				t.Fatal("Start succeeded with a failing etcd")
			}
			for _, want := range tc.wantInError {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Start error does not contain %q:\n%v", want, err)
				}
			}
			data, _ := os.ReadFile(counter)
			if got := strings.Count(string(data), "attempt"); got != tc.wantAttempts {
				t.Errorf("etcd started %d times, want %d", got, tc.wantAttempts)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("failed Start left %s behind", dir)
			}
		})
	}
}

func TestStartRefusesFolderOfRunningControlPlane(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// This test binary stands in for a component still running.
	running := &process{name: "kube-apiserver", binary: exe, pid: os.Getpid()}
	if err := writeState(dir, []*process{running}); err != nil {
		t.Fatal(err)
	}
	_, err = Start(t.Context(), Options{Dir: dir, Tools: fakeTools(t, "exec sleep 60\n")})
	if err == nil || !strings.Contains(err.Error(), "already running") || !strings.Contains(err.Error(), "kube-apiserver") {
		t.Fatalf("Start error = %v, want it to refuse a folder whose kube-apiserver is running", err)
	}
	if _, err := os.Stat(filepath.Join(dir, StateFile)); err != nil {
		t.Errorf("Start touched the running control plane's folder: %v", err)
	}
}

func TestStartRefusesForeignFolder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "notes.txt"), "mine", 0o644)
	_, err := Start(t.Context(), Options{Dir: dir, Tools: fakeTools(t, "exec sleep 60\n")})
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Start error = %v, want refusal of a non-empty folder", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "notes.txt")); err != nil {
		t.Errorf("Start removed a file it does not own: %v", err)
	}
}

func TestStartTimeoutReportsTheAwaitedComponent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "cp")
	_, err := Start(ctx, Options{Dir: dir, Tools: fakeTools(t, "echo 'etcd still recovering'\nexec sleep 60\n")})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start error = %v, want a deadline error", err)
	}
	for _, want := range []string{"wait for etcd health", "etcd log", "etcd still recovering"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error does not contain %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Start left %s behind", dir)
	}
}

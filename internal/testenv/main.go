package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// E2EEnv is the environment variable that, set to "1", turns missing tools
// from skipped end-to-end tests into a failed test binary.
const E2EEnv = "CHARTER_E2E"

// shared is the environment of the running test binary, set up by Main and
// started by the first Get.
var shared struct {
	mu       sync.Mutex
	main     bool   // Main was called
	skip     string // why end-to-end tests skip; empty when they run
	env      *Env
	startErr error
	started  bool
}

// Main runs a test binary's tests with a shared control plane; call it
// from TestMain. The control plane starts on the first Get, so a run that
// selects only unit tests starts nothing, and is stopped after the tests.
// When the tools are missing, Get skips; with CHARTER_E2E=1 Main instead
// fails the binary at once, telling to run `make tools`.
func Main(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	shared.mu.Lock()
	shared.main = true
	if err := CheckTools(ToolsDir()); err != nil {
		if os.Getenv(E2EEnv) == "1" {
			shared.mu.Unlock()
			fmt.Fprintf(os.Stderr, "testenv: %v (%s=1 requires the control plane)\n", err, E2EEnv)
			return 1
		}
		shared.skip = err.Error()
	}
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.env != nil {
		if err := shared.env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
		shared.env = nil
	}
	return code
}

// Get returns the test binary's control plane, starting it on first use.
// It skips t when the tools are missing (see Main) and fails t when the
// control plane cannot start or TestMain does not call Main.
func Get(t testing.TB) *Env {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.main {
		t.Fatal("testenv.Get needs TestMain to call testenv.Main(m)")
	}
	if testing.Short() {
		t.Skip("needs the control plane; skipped with -short")
	}
	if shared.skip != "" {
		t.Skip(shared.skip)
	}
	if !shared.started {
		shared.started = true
		ctx, cancel := context.WithTimeout(context.Background(), defaultStartTimeout)
		defer cancel()
		begin := time.Now()
		shared.env, shared.startErr = Start(ctx, Options{})
		if shared.startErr == nil {
			t.Logf("testenv: control plane started in %s", time.Since(begin).Round(100*time.Millisecond))
		}
	}
	if shared.startErr != nil {
		t.Fatalf("testenv: start control plane: %v", shared.startErr)
	}
	return shared.env
}

// NewNamespace creates a namespace named after t and deletes it when t
// ends. Tests sharing a control plane stay apart by each using their own.
func (e *Env) NewNamespace(t testing.TB) string {
	t.Helper()
	client, err := kubernetes.NewForConfig(e.RESTConfig())
	if err != nil {
		t.Fatalf("testenv: create client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: namespacePrefix(t.Name())},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("testenv: create namespace: %v", err)
	}
	t.Cleanup(func() {
		// t's own context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("testenv: delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// namespacePrefix turns a test name into a GenerateName prefix: a DNS
// label start, lower case, at most 40 characters, ending in "-". The API
// server appends 5 random characters.
func namespacePrefix(testName string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(testName) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
			continue
		}
		if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	name := b.String()
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-")
	if name == "" || name[0] < 'a' || name[0] > 'z' {
		name = "test-" + name
		name = strings.TrimSuffix(name, "-")
	}
	return name + "-"
}

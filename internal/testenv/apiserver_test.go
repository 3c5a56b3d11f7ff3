package testenv_test

import (
	"context"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/internal/testenv"
)

// A dedicated control plane's API server stops and comes back on the same
// address with the same data; a client created before works again.
func TestFaultAPIServerStopAndStart(t *testing.T) {
	if os.Getenv("CHARTER_FAULTS") != "1" {
		t.Skip("starts a control plane of its own: run with CHARTER_FAULTS=1 (make test-faults)")
	}
	env := testenv.New(t)
	client := newClient(t, env)
	ctx := t.Context()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kept"}, Data: map[string]string{"k": "v"}}
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := env.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := env.StopAPIServer(); err != nil {
		t.Errorf("stopping a stopped API server: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := client.CoreV1().ConfigMaps("default").Get(short, "kept", metav1.GetOptions{})
	cancel()
	if err == nil {
		t.Fatal("the API server answers after StopAPIServer")
	}

	begin := time.Now()
	if err := env.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server back in %s", time.Since(begin).Round(100*time.Millisecond))
	if err := env.StartAPIServer(ctx); err != nil {
		t.Errorf("starting a running API server: %v", err)
	}
	got, err := client.CoreV1().ConfigMaps("default").Get(ctx, "kept", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if got.Data["k"] != "v" {
		t.Errorf("data after the restart: %v", got.Data)
	}
}

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Deploy flags write the release's behaviour fields; `charter status`
// shows the last drift, which fields changed and by which field manager.
func TestReleaseBehaviourFlagsAndDriftInStatus(t *testing.T) {
	c := newCLI(t)
	decl := func() string {
		b, err := os.ReadFile(filepath.Join(c.state, "releases", "shop.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	errOut := c.fails("deploy", "-n", "bad", "--namespace", c.ns, "--remediation", "retry", exampleChart)
	mustContain(t, errOut, `Error: --remediation "retry": want rollback or none`)
	if _, err := os.Stat(filepath.Join(c.state, "releases", "bad.yaml")); !os.IsNotExist(err) {
		t.Errorf("a refused deploy wrote its declaration: %v", err)
	}

	c.ok("deploy", "-n", "shop", "--namespace", c.ns, "--health-timeout", "90s", "--remediation", "rollback", "--force", "--adopt", exampleChart)
	mustContain(t, decl(), "timeout: 1m30s\n", "remediation: rollback\n", "force: true\n", "adopt: true\n")

	c.ok("redeploy", "--force=false", "--health-timeout", "2m", "shop")
	got := decl()
	mustContain(t, got, "timeout: 2m\n", "remediation: rollback\n", "adopt: true\n")
	if strings.Contains(got, "force:") {
		t.Errorf("--force=false left force in the declaration:\n%s", got)
	}

	// A hand edit, found and corrected by the next reconcile.
	ctx := context.Background()
	d := c.deployment("shop-hello")
	d.Spec.Replicas = ptr(int32(3))
	if _, err := c.kube.AppsV1().Deployments(c.ns).Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	mustContain(t, c.ok("reconcile", "shop"), "shop: corrected")

	out := c.ok("status", "shop")
	mustContain(t, out, "Last drift: ", ", corrected\n", "Deployment/"+c.ns+"/shop-hello", "/spec/replicas", "by kubectl-edit")

	var v StatusView
	if err := json.Unmarshal([]byte(c.ok("status", "shop", "-o", "json")), &v); err != nil {
		t.Fatalf("status -o json is not JSON: %v", err)
	}
	if v.LastDrift == nil || v.LastDrift.Action != "corrected" || len(v.LastDrift.Objects) != 1 ||
		strings.Join(v.LastDrift.Objects[0].Fields, ",") != "/spec/replicas" || strings.Join(v.LastDrift.Objects[0].Managers, ",") != "kubectl-edit" {
		t.Errorf("status -o json lastDrift = %+v", v.LastDrift)
	}
}

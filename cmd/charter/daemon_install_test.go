package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/credential"
	"github.com/charter-sh/charter/internal/testenv"
	"github.com/charter-sh/charter/reconcile"
	"github.com/charter-sh/charter/record"
)

const testSource = "https://git.example.com/team/state.git?ref=main"

// Install, reinstall, status, uninstall against the real control plane; kwok
// runs the daemon's Pod (the image is never pulled).
func TestDaemonInstall(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	ns := c.ns
	clusterName := daemonName + "-" + ns
	t.Cleanup(func() { c.run("daemon", "uninstall", "--namespace", ns) })

	// Not installed yet: status says so, exit 1.
	out, _, code := c.run("daemon", "status", "--namespace", ns)
	if code != 1 {
		t.Fatalf("status before install: exit %d, want 1", code)
	}
	mustContain(t, out, "NOT OK", "not installed")

	out = c.ok("daemon", "install", "--namespace", ns, "--source", testSource, "--image", "registry.local/charter:test")
	for _, want := range []string{
		"ServiceAccount/" + ns + "/charter", "ClusterRole/" + clusterName, "ClusterRoleBinding/" + clusterName,
		"Role/" + ns + "/charter-daemon", "RoleBinding/" + ns + "/charter-daemon",
		"Deployment/" + ns + "/charter-daemon", "Service/" + ns + "/charter-daemon",
	} {
		if !strings.Contains(out, "created "+want) {
			t.Errorf("install did not print created %s:\n%s", want, out)
		}
	}
	d := c.deployment(daemonName)
	ctr := d.Spec.Template.Spec.Containers[0]
	if ctr.Image != "registry.local/charter:test" {
		t.Errorf("image = %s", ctr.Image)
	}
	args := strings.Join(ctr.Args, " ")
	mustContain(t, args, "daemon run --listen :9292 --log-json", "--config "+daemonConfigFile, "--records-namespace "+ns)
	cm, err := c.kube.CoreV1().ConfigMaps(ns).Get(ctx, daemonConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, cm.Data["daemon.yaml"], "url: "+testSource, "name: state")
	if ctr.ReadinessProbe == nil || ctr.ReadinessProbe.HTTPGet.Path != "/readyz" || ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v liveness %+v", ctr.ReadinessProbe, ctr.LivenessProbe)
	}
	if sc := d.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("pod does not run as non-root: %+v", sc)
	}
	if d.Labels[labelManagedBy] != installManagedBy {
		t.Errorf("deployment labels = %v", d.Labels)
	}
	cr, err := c.kube.RbacV1().ClusterRoles().Get(ctx, clusterName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range cr.Rules {
		for _, res := range r.Resources {
			if res == "*" || res == "clusterroles" || res == "clusterrolebindings" {
				t.Errorf("default ClusterRole grants %s: %+v", res, r)
			}
		}
	}
	waitAvailable(t, c, daemonName)

	// Idempotent.
	out = c.ok("daemon", "install", "--namespace", ns, "--source", testSource, "--image", "registry.local/charter:test")
	if strings.Contains(out, "created ") || strings.Contains(out, "configured ") {
		t.Errorf("second install changed something:\n%s", out)
	}
	mustContain(t, out, "unchanged Deployment/"+ns+"/charter-daemon")

	// Available but no heartbeat: not OK.
	out, _, code = c.run("daemon", "status", "--namespace", ns)
	if code != 1 {
		t.Errorf("status without heartbeat: exit %d, want 1", code)
	}
	mustContain(t, out, "no recent heartbeat")

	hb := &reconcile.Heartbeat{Client: c.kube, Namespace: ns, Identity: "test-daemon"}
	if err := hb.Renew(ctx, []string{testSource}, reconcile.HeartbeatStatus{LastReconcile: time.Now()}); err != nil {
		t.Fatal(err)
	}
	out = c.ok("daemon", "status", "--namespace", ns)
	mustContain(t, out, "OK", "Heartbeat:", "test-daemon", testSource)
	if !regexp.MustCompile(`Ready:\s+1/1`).MatchString(out) {
		t.Errorf("status does not show 1/1 ready:\n%s", out)
	}
	if strings.Contains(out, "NOT OK") {
		t.Errorf("status not OK:\n%s", out)
	}
	var rep daemonStatusReport
	if err := json.Unmarshal([]byte(c.ok("daemon", "status", "--namespace", ns, "-o", "json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.ReadyReplicas != 1 || rep.HeartbeatAge == "" || rep.LastReconcile == "" {
		t.Errorf("json status = %+v", rep)
	}
	mustContain(t, out, "Last reconcile:")

	// A source the daemon cannot fetch makes the daemon not OK, named.
	failing := reconcile.HeartbeatStatus{LastReconcile: time.Now(), Sources: []reconcile.SourceStatus{
		{Source: testSource, Error: "ls-remote: authentication required"}}}
	if err := hb.Renew(ctx, []string{testSource}, failing); err != nil {
		t.Fatal(err)
	}
	out, _, code = c.run("daemon", "status", "--namespace", ns)
	if code != 1 {
		t.Errorf("status with a failing source: exit %d, want 1", code)
	}
	mustContain(t, out, "source "+testSource+" failing: ls-remote: authentication required")
	if err := hb.Renew(ctx, []string{testSource}, reconcile.HeartbeatStatus{LastReconcile: time.Now()}); err != nil {
		t.Fatal(err)
	}

	// Uninstall: exactly the labelled objects; a foreign ConfigMap, a
	// credential and the Namespace stay; --purge removes release records.
	mustCreateSecret(t, c, ns, "rec", map[string]string{record.LabelOwner: record.OwnerValue, record.LabelRelease: "web"})
	mustCreateSecret(t, c, ns, "cred", map[string]string{record.LabelOwner: record.OwnerValue, "charter.sh/kind": "credential"})
	if _, err := c.kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "foreign"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out = c.ok("daemon", "uninstall", "--namespace", ns, "--purge")
	mustContain(t, out, "deleted Deployment/"+ns+"/charter-daemon", "deleted ClusterRole/"+clusterName, "deleted Secret/"+ns+"/rec")
	gone := map[string]error{}
	_, gone["deployment"] = c.kube.AppsV1().Deployments(ns).Get(ctx, daemonName, metav1.GetOptions{})
	_, gone["service"] = c.kube.CoreV1().Services(ns).Get(ctx, daemonName, metav1.GetOptions{})
	_, gone["serviceaccount"] = c.kube.CoreV1().ServiceAccounts(ns).Get(ctx, daemonSA, metav1.GetOptions{})
	_, gone["role"] = c.kube.RbacV1().Roles(ns).Get(ctx, daemonName, metav1.GetOptions{})
	_, gone["rolebinding"] = c.kube.RbacV1().RoleBindings(ns).Get(ctx, daemonName, metav1.GetOptions{})
	_, gone["clusterrole"] = c.kube.RbacV1().ClusterRoles().Get(ctx, clusterName, metav1.GetOptions{})
	_, gone["clusterrolebinding"] = c.kube.RbacV1().ClusterRoleBindings().Get(ctx, clusterName, metav1.GetOptions{})
	_, gone["record"] = c.kube.CoreV1().Secrets(ns).Get(ctx, "rec", metav1.GetOptions{})
	for k, err := range gone {
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s after uninstall: err %v, want NotFound", k, err)
		}
	}
	if _, err := c.kube.CoreV1().ConfigMaps(ns).Get(ctx, "foreign", metav1.GetOptions{}); err != nil {
		t.Errorf("foreign ConfigMap: %v", err)
	}
	if _, err := c.kube.CoreV1().Secrets(ns).Get(ctx, "cred", metav1.GetOptions{}); err != nil {
		t.Errorf("credential Secret: %v", err)
	}
	if _, err := c.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
		t.Errorf("namespace: %v", err)
	}
	out = c.ok("daemon", "uninstall", "--namespace", ns)
	mustContain(t, out, "Nothing to uninstall")
}

func TestDaemonInstallDryRun(t *testing.T) {
	c := newCLI(t)
	ns := "charter-dry-" + rand.String(6)
	out := c.ok("daemon", "install", "--namespace", ns, "--source", testSource, "--dry-run")
	docs := strings.Split(out, "---\n")
	kinds := map[string]bool{}
	for _, doc := range docs[1:] {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("dry-run output is not YAML: %v\n%s", err, doc)
		}
		kinds[fmt.Sprint(m["kind"])] = true
	}
	for _, k := range []string{"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment", "Service"} {
		if !kinds[k] {
			t.Errorf("dry-run did not print a %s", k)
		}
	}
	mustContain(t, out, "image: ghcr.io/charter-sh/charter:"+version, "app.kubernetes.io/managed-by: charter-install")
	ctx := context.Background()
	if _, err := c.kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run created namespace %s (err %v)", ns, err)
	}
	if _, err := c.kube.RbacV1().ClusterRoles().Get(ctx, daemonName+"-"+ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("dry-run created the ClusterRole (err %v)", err)
	}

	admin := c.ok("daemon", "install", "--namespace", ns, "--source", testSource, "--dry-run", "--cluster-admin")
	mustContain(t, admin, "- '*'")
	if strings.Contains(out, "- '*'") {
		t.Errorf("default RBAC grants '*':\n%s", out)
	}
}

// Source credentials become Secrets in the daemon's namespace: a cluster
// credential is copied there, an ssh key and a webhook secret are stored;
// --dry-run never shows their values; uninstall removes the copies only.
func TestDaemonInstallCredentials(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	daemonNS := testenv.Get(t).NewNamespace(t)
	t.Cleanup(func() { c.run("daemon", "uninstall", "--namespace", daemonNS) })
	c.ok("credential", "add", "bot-user", "s3cr3t-token-value", "--name", "git-bot")
	dir := t.TempDir()
	key := filepath.Join(dir, "id_ed25519")
	hook := filepath.Join(dir, "hook")
	if err := os.WriteFile(key, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hook, []byte("hook-hmac-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"daemon", "install", "--namespace", daemonNS, "--source", "team=" + testSource,
		"--credential", "team=git-bot", "--ssh-key", key, "--webhook-secret-file", hook, "--image", "registry.local/charter:test"}

	out := c.ok(append(args, "--dry-run")...)
	for _, secret := range []string{"s3cr3t-token-value", "secret-key-material", "hook-hmac-secret"} {
		if strings.Contains(out, secret) || strings.Contains(out, base64.StdEncoding.EncodeToString([]byte(secret))) {
			t.Errorf("--dry-run printed a secret (%s)", secret)
		}
	}
	mustContain(t, out, "REDACTED", "name: git-bot", "name: "+daemonSSHName)

	out = c.ok(args...)
	mustContain(t, out, "created Secret/"+daemonNS+"/git-bot", "created Secret/"+daemonNS+"/"+daemonSSHName,
		"created Secret/"+daemonNS+"/"+daemonWebhookName, "created ConfigMap/"+daemonNS+"/"+daemonConfigName)
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("install printed the secret:\n%s", out)
	}
	copied, err := credential.NewStore(c.kube, daemonNS).Get(ctx, "git-bot")
	if err != nil || copied.Token != "bot-user" || copied.Secret() != "s3cr3t-token-value" {
		t.Fatalf("copied credential = %v, %v", copied, err)
	}
	cm, err := c.kube.CoreV1().ConfigMaps(daemonNS).Get(ctx, daemonConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, cm.Data["daemon.yaml"], "name: team", "credential: git-bot", "webhookSecretFile: "+daemonWebhookDir+"/secret")
	d, err := c.kube.AppsV1().Deployments(daemonNS).Get(ctx, daemonName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env := fmt.Sprint(d.Spec.Template.Spec.Containers[0].Env)
	mustContain(t, env, "CHARTER_SSH_KEY "+daemonSSHDir+"/identity")

	// Idempotent, secrets included.
	out = c.ok(args...)
	if strings.Contains(out, "created ") || strings.Contains(out, "configured ") {
		t.Errorf("second install changed something:\n%s", out)
	}
	// A credential that does not exist, or a --credential naming no source.
	errOut := c.fails("daemon", "install", "--namespace", daemonNS, "--source", "team="+testSource, "--credential", "team=nope")
	mustContain(t, errOut, `credential "nope" for source team not found`)
	errOut = c.fails("daemon", "install", "--namespace", daemonNS, "--source", "team="+testSource, "--credential", "other=git-bot")
	mustContain(t, errOut, "--credential names no source: other")

	out = c.ok("daemon", "uninstall", "--namespace", daemonNS)
	mustContain(t, out, "deleted Secret/"+daemonNS+"/git-bot", "deleted ConfigMap/"+daemonNS+"/"+daemonConfigName)
	if _, err := credential.NewStore(c.kube, c.ns).Get(ctx, "git-bot"); err != nil {
		t.Errorf("the original credential is gone: %v", err)
	}
}

func TestDaemonInstallTarget(t *testing.T) {
	c := newCLI(t)
	out := c.ok("daemon", "target")
	mustContain(t, out, "API Endpoint: https://", "Context: ", "Namespace: ", "Charter namespace: "+c.ns)
}

func TestDaemonInstallRefuses(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"local folder", []string{"--source", "/srv/state"}, "local folder"},
		{"credentials in URL", []string{"--source", "https://user:pw@git.example.com/s.git"}, "credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			args := append([]string{"daemon", "install", "--dry-run"}, tt.args...)
			if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 1 {
				t.Fatalf("exit %d, want 1 (%s)", code, errb.String())
			}
			if !strings.Contains(errb.String(), tt.want) || strings.Contains(errb.String(), "pw@") {
				t.Errorf("error = %q, want it to mention %q and no password", errb.String(), tt.want)
			}
		})
	}
}

func waitAvailable(t *testing.T, c *cli, name string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		d, err := c.kube.AppsV1().Deployments(c.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && deploymentAvailable(d) && d.Status.ReadyReplicas == 1 {
			return
		}
		if time.Now().After(deadline) {
			var st appsv1.DeploymentStatus
			if d != nil {
				st = d.Status
			}
			t.Fatalf("deployment %s not available: %v %+v", name, err, st)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func mustCreateSecret(t *testing.T, c *cli, ns, name string, labels map[string]string) {
	t.Helper()
	_, err := c.kube.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// A daemon Pod that cannot run is reported with the reason.
func TestDaemonInstallNotReady(t *testing.T) {
	c := newCLI(t)
	ctx := context.Background()
	t.Cleanup(func() { c.run("daemon", "uninstall", "--namespace", c.ns) })
	c.ok("daemon", "install", "--namespace", c.ns, "--source", testSource)
	waitAvailable(t, c, daemonName)
	deps := c.kube.AppsV1().Deployments(c.ns)
	for _, p := range []string{
		`{"spec":{"replicas":0}}`,
		`{"spec":{"replicas":1,"template":{"spec":{"nodeSelector":{"charter-test":"nowhere"}}}}}`,
	} {
		if _, err := deps.Patch(ctx, daemonName, types.StrategicMergePatchType, []byte(p), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, _, code := c.run("daemon", "status", "--namespace", c.ns)
		if code == 1 && strings.Contains(out, "not ready: pod ") && strings.Contains(out, "Unschedulable") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never reported the unschedulable Pod (exit %d):\n%s", code, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/charter-sh/charter/record"
	"github.com/charter-sh/charter/render"
)

// appChart is a small chart whose values decide what makes a release
// fail: a node selector no node matches (never healthy), the Deployment's
// selector (immutable), an extra ConfigMap (pruned on rollback).
var appChart = map[string]string{
	"Chart.yaml":  "apiVersion: v2\nname: app\nversion: 0.1.0\n",
	"values.yaml": "deployment: true\nreplicas: 1\nselector: app\nnodeSelector: {}\nextra: false\nignore: \"\"\ndata: {a: \"1\"}\n",
	"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data: {{ toJson .Values.data }}
{{- if .Values.extra }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-extra
data: {b: "2"}
{{- end }}
`,
	"templates/deployment.yaml": `{{- if .Values.deployment }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  {{- with .Values.ignore }}
  annotations:
    charter.sh/drift-ignore: {{ . | quote }}
  {{- end }}
spec:
  replicas: {{ .Values.replicas }}
  selector:
    matchLabels: {app: {{ .Values.selector }}}
  template:
    metadata:
      labels: {app: {{ .Values.selector }}}
    spec:
      nodeSelector: {{ toJson .Values.nodeSelector }}
      containers:
        - name: web
          image: nginx
{{- end }}
`,
}

// withAppChart writes appChart into the fixture's state as charts/app.
func (f *fixture) withAppChart() *fixture {
	f.t.Helper()
	for name, body := range appChart {
		p := filepath.Join(f.dir.Root(), "charts", "app", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
	return f
}

// declareApp writes a declaration of the app chart: extra holds more
// top-level fields, values the values block (indented two spaces).
func (f *fixture) declareApp(name, extra, values string) {
	f.t.Helper()
	body := "apiVersion: charter.sh/v1\nkind: Release\nname: " + name + "\nnamespace: " + f.ns + "\nchart: charts/app\n" + extra
	if values != "" {
		body += "values:\n" + values
	}
	if err := os.WriteFile(filepath.Join(f.dir.Root(), "releases", name+".yaml"), []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) history(name string) []*record.Revision {
	f.t.Helper()
	h, err := f.recs.History(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return h
}

// statuses summarises a history as "1:superseded 2:failed 3:deployed".
func statuses(h []*record.Revision) string {
	var s []string
	for _, r := range h {
		s = append(s, strconv.Itoa(r.Revision)+":"+string(r.Status))
	}
	return strings.Join(s, " ")
}

func isPermanent(err error) bool {
	var perm *PermanentError
	return errors.As(err, &perm)
}

func TestRemediationRollsBackAFailedUpgradeAndStallsAfterItsRetries(t *testing.T) {
	f := newFixture(t).withAppChart()
	ctx := context.Background()
	var events []Event
	f.recon.Progress = func(e Event) {
		if e.Object == "" {
			events = append(events, e)
		}
	}
	policy := "timeout: 4s\nremediation: {strategy: rollback, retries: 2}\n"

	// A first install that never becomes healthy is not rolled back.
	f.declareApp("fresh", policy, "  nodeSelector: {nowhere: \"true\"}\n")
	_, err := f.recon.Reconcile(ctx, "fresh", Options{})
	if err == nil || !strings.Contains(err.Error(), "timed out after 4s") {
		t.Fatalf("install error = %v, want the 4s health timeout", err)
	}
	if got := statuses(f.history("fresh")); got != "1:failed" {
		t.Errorf("history of a failed install = %q, want only the failed revision", got)
	}

	f.declareApp("web", policy, "  data: {a: \"good\"}\n")
	if _, err := f.recon.Reconcile(ctx, "web", Options{}); err != nil {
		t.Fatalf("install: %v", err)
	}

	// Upgrade 1: never healthy, and it adds a ConfigMap.
	f.declareApp("web", policy, "  data: {a: \"bad\"}\n  extra: true\n  nodeSelector: {nowhere: \"true\"}\n")
	res, err := f.recon.Reconcile(ctx, "web", Options{})
	if err == nil || isPermanent(err) {
		t.Fatalf("first failed upgrade: error = %v, want a retryable one", err)
	}
	for _, want := range []string{"timed out after 4s", "rolled back to revision 1 (attempt 1 of 2)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if res.Action != "rolled-back" || res.Revision != 3 {
		t.Errorf("result = %s revision %d, want rolled-back revision 3", res.Action, res.Revision)
	}
	if got := statuses(f.history("web")); got != "1:superseded 2:failed 3:deployed" {
		t.Errorf("history = %q", got)
	}
	h := f.history("web")
	if rb := h[2].RolledBack; rb == nil || rb.To != 1 || rb.Failed != 2 || rb.Attempts != 1 {
		t.Errorf("rollback record = %+v, want to 1, failed 2, attempt 1", h[2].RolledBack)
	}
	if !strings.HasPrefix(h[2].Message, "rolled back to revision 1: timed out after 4s") {
		t.Errorf("rollback message = %q", h[2].Message)
	}
	dep, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(dep.Spec.Template.Spec.NodeSelector) != 0 {
		t.Errorf("node selector %v still applied after the rollback", dep.Spec.Template.Spec.NodeSelector)
	}
	cm, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil || cm.Data["a"] != "good" {
		t.Errorf("configmap after rollback = %v (%v), want a=good", cm.Data, err)
	}
	if _, err := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "web-extra", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the ConfigMap the failed upgrade added was not pruned: %v", err)
	}

	// Upgrade 2 (the daemon's retry): the last attempt, then stalled.
	_, err = f.recon.Reconcile(ctx, "web", Options{OnlyIfChanged: true})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "stalled after 2 failed attempts") {
		t.Fatalf("second failed upgrade: error = %v, want a permanent stall", err)
	}
	if got := statuses(f.history("web")); got != "1:superseded 2:failed 3:superseded 4:failed 5:deployed" {
		t.Errorf("history = %q", got)
	}
	if h := f.history("web"); h[3].Retryable || h[4].RolledBack == nil || h[4].RolledBack.To != 1 || h[4].RolledBack.Attempts != 2 {
		t.Errorf("stalled records: failed retryable=%v, rollback %+v", h[3].Retryable, h[4].RolledBack)
	}
	if h := f.history("web"); !strings.HasSuffix(h[4].Message, "(stalled after 2 failed attempts: not retried until the declaration or chart changes)") {
		t.Errorf("stalled rollback message = %q", h[4].Message)
	}

	// Stalled: neither a file event nor a full pass tries the upgrade again.
	res, err = f.recon.Reconcile(ctx, "web", Options{OnlyIfChanged: true})
	if err != nil || res.Action != "stalled" {
		t.Errorf("pass on a stalled release = %v, %v; want stalled without error", res, err)
	}
	res, err = f.recon.Reconcile(ctx, "web", Options{})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "release web is stalled") || res.Action != "stalled" {
		t.Errorf("full pass on a stalled release = %v, %v", res, err)
	}
	if n := len(f.history("web")); n != 5 {
		t.Errorf("a stalled release got new revisions: %d, want 5", n)
	}

	// A changed declaration is tried again, and succeeds.
	f.declareApp("web", policy, "  data: {a: \"fixed\"}\n")
	res, err = f.recon.Reconcile(ctx, "web", Options{OnlyIfChanged: true})
	if err != nil || res.Action != "upgraded" {
		t.Fatalf("fixed upgrade = %v, %v", res, err)
	}

	var actions []string
	for _, e := range events {
		if e.Release == "web" {
			actions = append(actions, e.Action)
		}
	}
	got := strings.Join(actions, " ")
	for _, want := range []string{"failed rolled-back", "failed rolled-back stalled"} {
		if !strings.Contains(got, want) {
			t.Errorf("release events %q lack %q", got, want)
		}
	}
}

func TestImmutableFieldsNeedForce(t *testing.T) {
	f := newFixture(t).withAppChart()
	ctx := context.Background()
	f.declareApp("web", "", "  selector: one\n")
	if _, err := f.recon.Reconcile(ctx, "web", Options{}); err != nil {
		t.Fatal(err)
	}
	before, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	f.declareApp("web", "", "  selector: two\n")
	_, err = f.recon.Reconcile(ctx, "web", Options{})
	want := "Deployment/" + f.ns + "/web: spec.selector is immutable; set force: true in the declaration to replace the object"
	if err == nil || err.Error() != want || !isPermanent(err) {
		t.Fatalf("error = %v, want permanent %q", err, want)
	}
	if last := f.history("web"); last[len(last)-1].Message != want {
		t.Errorf("recorded failure = %q", last[len(last)-1].Message)
	}

	f.declareApp("web", "force: true\n", "  selector: two\n")
	res, err := f.recon.Reconcile(ctx, "web", Options{OnlyIfChanged: true})
	if err != nil || res.Action != "upgraded" {
		t.Fatalf("forced upgrade = %v, %v", res, err)
	}
	after, err := f.kube.AppsV1().Deployments(f.ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID == before.UID {
		t.Error("the Deployment was not replaced")
	}
	if got := after.Spec.Selector.MatchLabels["app"]; got != "two" {
		t.Errorf("selector = %q, want two", got)
	}
}

func TestAdoptionOnlyWhenDeclared(t *testing.T) {
	for _, threshold := range []int{8, 1} {
		t.Run(fmt.Sprintf("list from %d objects", threshold), func(t *testing.T) {
			defer func(old int) { ownershipListThreshold = old }(ownershipListThreshold)
			ownershipListThreshold = threshold
			testAdoption(t)
		})
	}
}

func testAdoption(t *testing.T) {
	f := newFixture(t).withAppChart()
	ctx := context.Background()
	_, err := f.kube.CoreV1().ConfigMaps(f.ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"a": "by hand"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.declareApp("cfg", "", "  deployment: false\n")
	_, err = f.recon.Reconcile(ctx, "cfg", Options{})
	want := "ConfigMap/" + f.ns + "/cfg exists and is not managed by charter; set adopt: true in the declaration to take it over"
	if err == nil || err.Error() != want || !isPermanent(err) {
		t.Fatalf("error = %v, want permanent %q", err, want)
	}
	cm, _ := f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "cfg", metav1.GetOptions{})
	if cm.Data["a"] != "by hand" {
		t.Errorf("the refused object was changed: %v", cm.Data)
	}

	f.declareApp("cfg", "adopt: true\n", "  deployment: false\n")
	if _, err := f.recon.Reconcile(ctx, "cfg", Options{OnlyIfChanged: true}); err != nil {
		t.Fatalf("adopt: %v", err)
	}
	cm, _ = f.kube.CoreV1().ConfigMaps(f.ns).Get(ctx, "cfg", metav1.GetOptions{})
	if cm.Labels[render.LabelRelease] != "cfg" || cm.Data["a"] != "1" {
		t.Errorf("adopted ConfigMap: labels %v data %v", cm.Labels, cm.Data)
	}

	// An object of another release is never taken, adopt or not.
	_, err = f.kube.CoreV1().ConfigMaps(f.ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "theirs",
		Labels: map[string]string{render.LabelRelease: "other", render.LabelNamespace: f.ns}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f.declareApp("theirs", "adopt: true\n", "  deployment: false\n")
	_, err = f.recon.Reconcile(ctx, "theirs", Options{})
	if err == nil || !strings.Contains(err.Error(), `ConfigMap/`+f.ns+`/theirs belongs to release "other"`) {
		t.Errorf("error = %v, want the conflict with release other", err)
	}
}

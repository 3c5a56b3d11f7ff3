package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	ssaerrors "github.com/fluxcd/pkg/ssa/errors"
	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/charter-sh/charter/state"
)

func obj(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCopyPathsKeepsLiveValuesAtIgnoredPaths(t *testing.T) {
	cases := map[string]struct {
		live, desired string
		paths         []string
		want          string
	}{
		"live value replaces the rendered one": {
			live:    `{"spec":{"replicas":5}}`,
			desired: `{"spec":{"replicas":1,"paused":false}}`,
			paths:   []string{"/spec/replicas"}, want: `{"spec":{"replicas":5,"paused":false}}`,
		},
		"path the live object lacks keeps the rendered value": {
			live:    `{"spec":{}}`,
			desired: `{"spec":{"replicas":1}}`,
			paths:   []string{"/spec/replicas"}, want: `{"spec":{"replicas":1}}`,
		},
		"live value the chart does not render is kept": {
			live:    `{"spec":{"replicas":3}}`,
			desired: `{"metadata":{"name":"x"}}`,
			paths:   []string{"/spec/replicas"}, want: `{"metadata":{"name":"x"},"spec":{"replicas":3}}`,
		},
		"escaped tokens": {
			live:    `{"metadata":{"annotations":{"a/b":"live","c~d":"live2"}}}`,
			desired: `{"metadata":{"annotations":{"a/b":"mine"}}}`,
			paths:   []string{"/metadata/annotations/a~1b", "/metadata/annotations/c~0d"},
			want:    `{"metadata":{"annotations":{"a/b":"live","c~d":"live2"}}}`,
		},
		"list index": {
			live:    `{"spec":{"containers":[{"name":"a","image":"live:1"}]}}`,
			desired: `{"spec":{"containers":[{"name":"a","image":"mine:2"}]}}`,
			paths:   []string{"/spec/containers/0/image"}, want: `{"spec":{"containers":[{"name":"a","image":"live:1"}]}}`,
		},
		"index past the rendered list is left alone": {
			live:    `{"spec":{"containers":[{"image":"a"},{"image":"b"}]}}`,
			desired: `{"spec":{"containers":[{"image":"a"}]}}`,
			paths:   []string{"/spec/containers/1/image"}, want: `{"spec":{"containers":[{"image":"a"}]}}`,
		},
		"whole subtree": {
			live:    `{"data":{"a":"1","b":"2"}}`,
			desired: `{"data":{"a":"x"}}`,
			paths:   []string{"/data"}, want: `{"data":{"a":"1","b":"2"}}`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			live, desired := obj(t, tc.live), obj(t, tc.desired)
			copyPaths(live, desired, tc.paths)
			if diff := cmp.Diff(obj(t, tc.want), desired); diff != "" {
				t.Errorf("desired after copy (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("the copy does not share memory with the live object", func(t *testing.T) {
		live, desired := obj(t, `{"data":{"a":"1"}}`), obj(t, `{}`)
		copyPaths(live, desired, []string{"/data"})
		desired["data"].(map[string]any)["a"] = "changed"
		if live["data"].(map[string]any)["a"] != "1" {
			t.Error("editing the desired object changed the live one")
		}
	})
}

func TestChangedFieldsNamesPathsNotValues(t *testing.T) {
	live := obj(t, `{"apiVersion":"v1","kind":"ConfigMap",
		"metadata":{"name":"x","resourceVersion":"9","managedFields":[{"manager":"a"}],"labels":{"app":"x","extra":"y"}},
		"data":{"a":"hacked","b":"same","c/d":"1"},"status":{"x":1},"list":[1,2]}`)
	merged := obj(t, `{"apiVersion":"v1","kind":"ConfigMap",
		"metadata":{"name":"x","resourceVersion":"10","labels":{"app":"x"}},
		"data":{"a":"secret","b":"same","e":"new"},"status":{"x":2},"list":[1,2,3]}`)
	got := changedFields(live, merged)
	want := []string{"/data/a", "/data/c~1d", "/data/e", "/list", "/metadata/labels/extra"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("changed fields (-want +got):\n%s", diff)
	}
	for _, f := range got {
		if strings.Contains(f, "hacked") || strings.Contains(f, "secret") {
			t.Errorf("a field path carries a value: %q", f)
		}
	}
	if got := changedFields(merged, merged); len(got) != 0 {
		t.Errorf("identical objects differ at %v", got)
	}
}

func TestForeignManagersPreferOwnersOfChangedFields(t *testing.T) {
	now := metav1.NewTime(time.Now())
	later := metav1.NewTime(now.Add(time.Minute))
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: "charter", Operation: metav1.ManagedFieldsOperationApply, Time: &now, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:template":{}}}`)}},
		{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate, Time: &now, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:replicas":{}}}`)}},
		{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, Time: &later, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:x":{}}}}`)}},
		{Manager: "kwok", Operation: metav1.ManagedFieldsOperationUpdate, Subresource: "status", Time: &later, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{}}`)}},
	})
	if diff := cmp.Diff([]string{"kubectl-edit"}, foreignManagers(u, []string{"/spec/replicas"})); diff != "" {
		t.Errorf("owners of /spec/replicas (-want +got):\n%s", diff)
	}
	// Nobody owns a removed field: the last writers are named.
	if diff := cmp.Diff([]string{"kube-controller-manager"}, foreignManagers(u, []string{"/data/gone"})); diff != "" {
		t.Errorf("managers of a removed field (-want +got):\n%s", diff)
	}
}

func TestOwnsPointer(t *testing.T) {
	fs := obj(t, `{"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"web\"}":{"f:image":{}}}}}},"f:data":{".":{},"f:a":{}}}`)
	for p, want := range map[string]bool{
		"/spec/replicas": true, "/spec/template/spec/containers/0/image": true, "/data/a": true,
		"/data/b": false, "/spec/paused": false, "/metadata/labels/x": false,
	} {
		if got := ownsPointer(fs, p); got != want {
			t.Errorf("ownsPointer(%s) = %v, want %v", p, got, want)
		}
	}
}

func TestLostFieldsTellForeignWritesFromOwnApplies(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	entry := func(manager string, at metav1.Time, fields, sub string) metav1.ManagedFieldsEntry {
		op := metav1.ManagedFieldsOperationUpdate
		if manager == FieldManager {
			op = metav1.ManagedFieldsOperationApply
		}
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: op, Time: &at, Subresource: sub, FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	ours := `{"f:spec":{"f:replicas":{},"f:paused":{}},"f:data":{"f:a":{}}}`
	cases := map[string]struct {
		before, after []metav1.ManagedFieldsEntry
		want          [][]string
	}{
		"someone changed a field charter applied": {
			before: []metav1.ManagedFieldsEntry{entry("charter", t0, ours, "")},
			after:  []metav1.ManagedFieldsEntry{entry("charter", t0, `{"f:spec":{"f:paused":{}},"f:data":{"f:a":{}}}`, ""), entry("kubectl-edit", t1, `{"f:spec":{"f:replicas":{}}}`, "")},
			want:   [][]string{{"f:spec", "f:replicas"}},
		},
		"a controller wrote status and its own annotation": {
			before: []metav1.ManagedFieldsEntry{entry("charter", t0, ours, "")},
			after: []metav1.ManagedFieldsEntry{entry("charter", t0, ours, ""), entry("kube-controller-manager", t1, `{"f:metadata":{"f:annotations":{"f:rev":{}}}}`, ""),
				entry("kwok", t1, `{"f:status":{}}`, "status")},
		},
		"charter applied a revision that sets fewer fields": {
			before: []metav1.ManagedFieldsEntry{entry("charter", t0, ours, "")},
			after:  []metav1.ManagedFieldsEntry{entry("charter", t1, `{"f:data":{"f:a":{}}}`, "")},
		},
		"managed fields reset by someone": {
			before: []metav1.ManagedFieldsEntry{entry("charter", t0, `{"f:data":{"f:a":{}}}`, "")},
			after:  []metav1.ManagedFieldsEntry{entry("intruder", t1, `{"f:data":{"f:a":{}}}`, "")},
			want:   [][]string{{"f:data", "f:a"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := lostFields(tc.before, tc.after)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("lost fields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAllUnderIgnoredPointers(t *testing.T) {
	ignored := [][]string{splitPointer("/spec/replicas"), splitPointer("/metadata/annotations/a~1b")}
	if !allUnder([][]string{{"f:spec", "f:replicas"}, {"f:metadata", "f:annotations", "f:a/b"}}, ignored) {
		t.Error("fields under ignored pointers were not recognised")
	}
	if allUnder([][]string{{"f:spec", "f:replicas"}, {"f:spec", "f:paused"}}, ignored) {
		t.Error("a field outside the ignored pointers was taken as ignored")
	}
	if allUnder([][]string{{"f:spec"}}, ignored) {
		t.Error("a parent of an ignored pointer was taken as ignored")
	}
}

func TestIgnoredPathsFromRulesAndAnnotation(t *testing.T) {
	decl := &state.Release{Drift: &state.Drift{Ignore: []state.DriftIgnore{
		{Paths: []string{"/spec/replicas"}, Target: &state.DriftTarget{Kind: "Deployment", Name: "web"}},
		{Paths: []string{"/metadata/labels/team"}},
	}}}
	o := &unstructured.Unstructured{}
	o.SetName("web")
	o.SetNamespace("shop")
	o.SetAnnotations(map[string]string{AnnotationDriftIgnore: "/data/x, /data/y"})
	dep := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	got, err := ignoredPaths(decl, o, dep)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/spec/replicas", "/metadata/labels/team", "/data/x", "/data/y"}, got); diff != "" {
		t.Errorf("ignored paths (-want +got):\n%s", diff)
	}
	got, _ = ignoredPaths(decl, o, schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"})
	if diff := cmp.Diff([]string{"/metadata/labels/team", "/data/x", "/data/y"}, got); diff != "" {
		t.Errorf("ignored paths of a ConfigMap (-want +got):\n%s", diff)
	}
	o.SetAnnotations(map[string]string{AnnotationDriftIgnore: "spec/replicas"})
	if _, err := ignoredPaths(decl, o, dep); err == nil || !strings.Contains(err.Error(), `annotation charter.sh/drift-ignore: path "spec/replicas" is not a JSON pointer`) {
		t.Errorf("bad annotation error = %v", err)
	}
}

func TestImmutableChangeNamesTheFields(t *testing.T) {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion("apps/v1")
	o.SetKind("Deployment")
	o.SetNamespace("shop")
	o.SetName("web")
	invalid := apierrors.NewInvalid(schema.GroupKind{Group: "apps", Kind: "Deployment"}, "web", field.ErrorList{
		field.Invalid(field.NewPath("spec", "selector"), "x", "field is immutable"),
		field.Invalid(field.NewPath("spec", "template", "metadata", "labels"), "y", "`selector` does not match template `labels`"),
	})
	got, fields, ok := immutableChange(ssaerrors.NewDryRunErr(invalid, o))
	if !ok || got != o || fields != "spec.selector is immutable" {
		t.Errorf("immutableChange = %v, %q, %v; want the object, \"spec.selector is immutable\", true", got, fields, ok)
	}
	other := apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, "x", field.ErrorList{field.Required(field.NewPath("data"), "")})
	if _, _, ok := immutableChange(ssaerrors.NewDryRunErr(other, o)); ok {
		t.Error("an invalid object without an immutable field was taken for an immutable change")
	}
	if _, _, ok := immutableChange(errors.New("connection refused")); ok {
		t.Error("a network error was taken for an immutable change")
	}
}

func TestDesiredDigestCoversBehaviourFields(t *testing.T) {
	base := &state.Release{Name: "web", Namespace: "shop", Chart: "charts/hello"}
	vals := map[string]any{"a": 1.0}
	// Declarations that set none of the fields keep the digest they had
	// before the fields existed, so upgrading charter re-applies nothing.
	old, _ := json.Marshal(struct {
		Name, Namespace, Chart, ChartDigest string
		Values                              map[string]any
	}{"web", "shop", "charts/hello", "sha256:aa", vals})
	sum := sha256.Sum256(old)
	if got, want := DesiredDigest(base, "sha256:aa", vals), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("digest of a plain declaration changed: %s, want %s", got, want)
	}
	d := DesiredDigest(base, "sha256:aa", vals)
	for name, edit := range map[string]func(*state.Release){
		"timeout":     func(r *state.Release) { r.Timeout = "1m" },
		"remediation": func(r *state.Release) { r.Remediation = &state.Remediation{Strategy: "rollback"} },
		"retries":     func(r *state.Release) { r.Remediation = &state.Remediation{Strategy: "rollback", Retries: 5} },
		"force":       func(r *state.Release) { r.Force = true },
		"adopt":       func(r *state.Release) { r.Adopt = true },
		"drift":       func(r *state.Release) { r.Drift = &state.Drift{Ignore: []state.DriftIgnore{{Paths: []string{"/a"}}}} },
	} {
		r := base.DeepCopy()
		edit(r)
		if DesiredDigest(r, "sha256:aa", vals) == d {
			t.Errorf("setting %s did not change the digest: a release stalled or refused would not be retried", name)
		}
	}
}

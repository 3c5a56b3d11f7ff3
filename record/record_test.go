package record

import (
	"context"
	"errors"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/charter-sh/charter/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newStore(t *testing.T, max int) (*Store, kubernetes.Interface, string) {
	t.Helper()
	env := testenv.Get(t)
	ns := env.NewNamespace(t)
	c, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(c, ns, max), c, ns
}

func TestHistoryIsBoundedAndKeepsTheNewestDeployed(t *testing.T) {
	s, _, _ := newStore(t, 3)
	ctx := context.Background()
	if _, err := s.History(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("history of an unknown release: %v, want ErrNotFound", err)
	}
	statuses := []Status{StatusDeployed, StatusFailed, StatusFailed, StatusFailed, StatusFailed}
	for i, st := range statuses {
		r := &Revision{Release: "web", Namespace: "shop", Status: st, Manifest: "kind: ConfigMap\n"}
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.Revision != i+1 {
			t.Fatalf("revision %d numbered %d", i+1, r.Revision)
		}
	}
	h, err := s.History(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range h {
		got = append(got, r.Revision)
	}
	// Three kept: the newest deployed (1) survives although it is the oldest.
	if want := []int{1, 4, 5}; !equalInts(got, want) {
		t.Errorf("kept revisions %v, want %v", got, want)
	}
	d, err := s.LastDeployed(ctx, "web")
	if err != nil || d.Revision != 1 {
		t.Errorf("last deployed = %v, %v; want revision 1", d, err)
	}
}

func TestListReturnsTheNewestRevisionOfEachRelease(t *testing.T) {
	s, _, _ := newStore(t, 0)
	ctx := context.Background()
	for _, rel := range []string{"b", "a", "b"} {
		if err := s.Create(ctx, &Revision{Release: rel, Status: StatusDeployed, Source: "git@x"}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 || l[0].Release != "a" || l[1].Release != "b" || l[1].Revision != 2 {
		t.Errorf("list = %+v, want a@1 and b@2 sorted by name", l)
	}
	sums, err := s.Summaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 2 || sums[0].Release != "a" || sums[1].Release != "b" || sums[1].Revision != 2 || sums[1].Status != StatusDeployed || sums[1].Source != "git@x" {
		t.Errorf("summaries = %+v, want a@1 and b@2 (deployed, from git@x)", sums)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.History(ctx, "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("records of b survived Delete: %v", err)
	}
	if _, err := s.History(ctx, "a"); err != nil {
		t.Errorf("Delete of b touched a: %v", err)
	}
}

func TestRecordsAreCompressedSecretsThatRoundTrip(t *testing.T) {
	s, c, ns := newStore(t, 0)
	ctx := context.Background()
	manifest := strings.Repeat("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\n", 2000)
	in := &Revision{Release: "big", Namespace: "shop", Status: StatusPendingInstall, Manifest: manifest,
		Values: map[string]any{"password": "s3cret"}, Inventory: []ObjectRef{{APIVersion: "v1", Kind: "ConfigMap", Namespace: "shop", Name: "x"}}}
	if err := s.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	in.Status = StatusDeployed
	if err := s.Update(ctx, in); err != nil {
		t.Fatal(err)
	}
	sec, err := c.CoreV1().Secrets(ns).Get(ctx, "charter.v1.big.v1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Type != SecretType || sec.Labels[LabelStatus] != "deployed" || sec.Labels[LabelRelease] != "big" {
		t.Errorf("secret type %q labels %v", sec.Type, sec.Labels)
	}
	if n := len(sec.Data[dataKey]); n > len(manifest)/10 {
		t.Errorf("record is %d bytes for a %d-byte manifest: not compressed", n, len(manifest))
	}
	out, err := s.Last(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	if out.Manifest != manifest || out.Values["password"] != "s3cret" || out.Status != StatusDeployed || len(out.Inventory) != 1 {
		t.Errorf("record did not round-trip: status %s, %d inventory", out.Status, len(out.Inventory))
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

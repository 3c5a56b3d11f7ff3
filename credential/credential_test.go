package credential_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/charter-sh/charter/credential"
	"github.com/charter-sh/charter/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const topSecret = "s3cr3t-Wh1ch-Must-N0t-Leak"

func newStore(t *testing.T) (*credential.Store, kubernetes.Interface, string) {
	t.Helper()
	env := testenv.Get(t)
	ns := env.NewNamespace(t)
	client, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return credential.NewStore(client, ns), client, ns
}

func names(cs []credential.Credential) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestDefaultName(t *testing.T) {
	tests := map[string]struct{ token, want string }{
		"short token":                 {"foo", "token-foo"},
		"lowercased":                  {"Foo", "token-foo"},
		"first eight characters":      {"AKIAIOSFODNN7EXAMPLE", "token-akiaiosf"},
		"punctuation becomes a dash":  {"ab_cd.efgh", "token-ab-cd-ef"},
		"dashes collapse and trim":    {"__a__b__", "token-a-b"},
		"non-ASCII letters dropped":   {"élan", "token-lan"},
		"no letter or digit → digest": {"________", "token-"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got := credential.DefaultName(tt.token)
			if tt.want == "token-" {
				if len(got) != len("token-")+8 || !strings.HasPrefix(got, "token-") {
					t.Errorf("DefaultName(%q) = %q, want token- and 8 hex digits", tt.token, got)
				}
			} else if got != tt.want {
				t.Errorf("DefaultName(%q) = %q, want %q", tt.token, got, tt.want)
			}
			if err := credential.ValidateName(got); err != nil {
				t.Errorf("DefaultName(%q) = %q is not a valid name: %v", tt.token, got, err)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	tests := map[string]struct {
		name    string
		wantErr string
	}{
		"plain":          {"token-foo", ""},
		"empty":          {"", "credential name is empty"},
		"upper case":     {"Token", `credential name "Token" is invalid`},
		"dot":            {"a.b", `credential name "a.b" is invalid`},
		"leading dash":   {"-a", `credential name "-a" is invalid`},
		"63 characters":  {strings.Repeat("a", 63), ""},
		"64 characters":  {strings.Repeat("a", 64), "is invalid"},
		"path traversal": {"../x", "is invalid"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			err := credential.ValidateName(tt.name)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateName(%q) = %v, want an error containing %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

// TestSecretNeverPrinted checks every way a Credential can be turned into
// text: none shows the secret, while Secret() still returns it.
func TestSecretNeverPrinted(t *testing.T) {
	c := credential.New("token-foo", "foo", topSecret)
	c.Created = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	type wrapper struct {
		inner  credential.Credential // unexported: fmt cannot call methods on it
		Public credential.Credential
		Ptr    *credential.Credential
	}
	w := wrapper{inner: *c, Public: *c, Ptr: c}
	outputs := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outputs["value "+verb] = fmt.Sprintf(verb, *c)
		outputs["pointer "+verb] = fmt.Sprintf(verb, c)
		outputs["slice "+verb] = fmt.Sprintf(verb, []credential.Credential{*c})
		outputs["map "+verb] = fmt.Sprintf(verb, map[string]*credential.Credential{"a": c})
		outputs["wrapper "+verb] = fmt.Sprintf(verb, w)
		outputs["wrapper pointer "+verb] = fmt.Sprintf(verb, &w)
	}
	outputs["String"] = c.String()
	outputs["GoString"] = c.GoString()
	outputs["error"] = fmt.Errorf("use %v: %w", c, errors.New("boom")).Error()
	for what, v := range map[string]any{"value": *c, "pointer": c, "wrapper": w, "slice": []*credential.Credential{c}} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%s): %v", what, err)
		}
		outputs["json "+what] = string(j)
		y, err := yaml.Marshal(v)
		if err != nil {
			t.Fatalf("yaml.Marshal(%s): %v", what, err)
		}
		outputs["yaml "+what] = string(y)
		sy, err := sigsyaml.Marshal(v)
		if err != nil {
			t.Fatalf("sigs.k8s.io/yaml.Marshal(%s): %v", what, err)
		}
		outputs["sigs yaml "+what] = string(sy)
	}
	for what, out := range outputs {
		if strings.Contains(out, topSecret) || strings.Contains(strings.ToLower(out), fmt.Sprintf("%x", topSecret)) {
			t.Errorf("%s shows the secret: %s", what, out)
		}
	}
	if got := outputs["value %v"]; got != "credential token-foo (token foo)" {
		t.Errorf("%%v = %q, want %q", got, "credential token-foo (token foo)")
	}
	if got, want := outputs["json value"], `{"name":"token-foo","token":"foo","created":"2025-01-02T03:04:05Z"}`; got != want {
		t.Errorf("JSON = %s, want %s", got, want)
	}
	if c.Secret() != topSecret || !c.HasSecret() {
		t.Errorf("Secret() = %q, HasSecret() = %v: want the secret", c.Secret(), c.HasSecret())
	}
}

func TestAddGetListRemove(t *testing.T) {
	store, client, ns := newStore(t)
	ctx := t.Context()

	c, err := store.Add(ctx, "foo", topSecret, "")
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if c.Name != "token-foo" || c.Token != "foo" || c.HasSecret() || c.Created.IsZero() {
		t.Errorf("Add returned %#v, want token-foo, token foo, a creation time and no secret", c)
	}

	t.Run("stores a labelled Secret of charter's type", func(t *testing.T) {
		obj, err := client.CoreV1().Secrets(ns).Get(ctx, "token-foo", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get Secret: %v", err)
		}
		if obj.Type != credential.SecretType {
			t.Errorf("type = %q, want %q", obj.Type, credential.SecretType)
		}
		if diff := cmp.Diff(map[string]string{"owner": "charter", "charter.sh/kind": "credential"}, obj.Labels); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		if string(obj.Data["token"]) != "foo" || string(obj.Data["secret"]) != topSecret {
			t.Errorf("data = %v, want token and secret", obj.Data)
		}
		for k, v := range obj.Annotations {
			if strings.Contains(v, topSecret) {
				t.Errorf("annotation %s holds the secret", k)
			}
		}
	})

	t.Run("default name clash gets a suffix", func(t *testing.T) {
		c2, err := store.Add(ctx, "FOO", "other", "")
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		if c2.Name != "token-foo-2" {
			t.Errorf("name = %q, want token-foo-2", c2.Name)
		}
	})

	t.Run("explicit name", func(t *testing.T) {
		c3, err := store.Add(ctx, "bar", "bar-secret", "ci-bot")
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		if c3.Name != "ci-bot" {
			t.Errorf("name = %q, want ci-bot", c3.Name)
		}
	})

	t.Run("explicit name taken is an error and changes nothing", func(t *testing.T) {
		_, err := store.Add(ctx, "baz", "another-secret", "ci-bot")
		if !errors.Is(err, credential.ErrExists) || err.Error() != `credential "ci-bot" already exists` {
			t.Fatalf("Add = %v, want `credential \"ci-bot\" already exists`", err)
		}
		got, err := store.Get(ctx, "ci-bot")
		if err != nil || got.Token != "bar" || got.Secret() != "bar-secret" {
			t.Fatalf("Get after clash = %v, %v: want the original credential", got, err)
		}
	})

	t.Run("Get returns the secret", func(t *testing.T) {
		got, err := store.Get(ctx, "token-foo")
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.Name != "token-foo" || got.Token != "foo" || got.Secret() != topSecret {
			t.Errorf("Get = %#v (secret %t), want token-foo with its secret", got, got.Secret() == topSecret)
		}
	})

	t.Run("List is sorted, filtered by pattern and carries no secret", func(t *testing.T) {
		tests := map[string]struct {
			pattern string
			want    []string
		}{
			"all":       {"", []string{"ci-bot", "token-foo", "token-foo-2"}},
			"star":      {"*", []string{"ci-bot", "token-foo", "token-foo-2"}},
			"prefix":    {"token-*", []string{"token-foo", "token-foo-2"}},
			"exact":     {"ci-bot", []string{"ci-bot"}},
			"class":     {"token-foo-[0-9]", []string{"token-foo-2"}},
			"no match":  {"nothing*", []string{}},
			"one char?": {"ci-bo?", []string{"ci-bot"}},
		}
		for name, tt := range tests {
			t.Run(name, func(t *testing.T) {
				got, err := store.List(ctx, tt.pattern)
				if err != nil {
					t.Fatalf("List(%q): %v", tt.pattern, err)
				}
				if diff := cmp.Diff(tt.want, names(got)); diff != "" {
					t.Errorf("List(%q) (-want +got):\n%s", tt.pattern, diff)
				}
				for _, c := range got {
					if c.HasSecret() || c.Secret() != "" || c.Token == "" || c.Created.IsZero() {
						t.Errorf("List item %v: want token and creation time, no secret", c)
					}
				}
			})
		}
		if _, err := store.List(ctx, "[a-"); err == nil || !strings.Contains(err.Error(), `pattern "[a-"`) {
			t.Errorf("List with a bad pattern = %v, want an error naming the pattern", err)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		if err := store.Remove(ctx, "token-foo-2"); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if _, err := store.Get(ctx, "token-foo-2"); !errors.Is(err, credential.ErrNotFound) {
			t.Errorf("Get after Remove = %v, want not found", err)
		}
		err := store.Remove(ctx, "token-foo-2")
		if !errors.Is(err, credential.ErrNotFound) || err.Error() != `credential "token-foo-2" not found` {
			t.Errorf("second Remove = %v, want `credential \"token-foo-2\" not found`", err)
		}
		got, err := store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"ci-bot", "token-foo"}, names(got)); diff != "" {
			t.Errorf("List after Remove (-want +got):\n%s", diff)
		}
	})
}

func TestForeignSecretsAreLeftAlone(t *testing.T) {
	store, client, ns := newStore(t)
	ctx := t.Context()
	foreign := []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}, StringData: map[string]string{"token": "x", "secret": topSecret}},
		// Labelled like a credential, but of another type.
		{ObjectMeta: metav1.ObjectMeta{Name: "lookalike", Labels: map[string]string{"owner": "charter", "charter.sh/kind": "credential"}},
			StringData: map[string]string{"token": "x", "secret": topSecret}},
		// Of the credential type, but not labelled by charter.
		{ObjectMeta: metav1.ObjectMeta{Name: "unlabelled"}, Type: credential.SecretType,
			StringData: map[string]string{"token": "x", "secret": topSecret}},
	}
	for _, s := range foreign {
		if _, err := client.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Secret %s: %v", s.Name, err)
		}
	}
	got, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("List = %v, want no credentials", got)
	}
	for _, s := range foreign {
		if _, err := store.Get(ctx, s.Name); !errors.Is(err, credential.ErrNotFound) {
			t.Errorf("Get(%s) = %v, want not found", s.Name, err)
		}
		if err := store.Remove(ctx, s.Name); !errors.Is(err, credential.ErrNotFound) {
			t.Errorf("Remove(%s) = %v, want not found", s.Name, err)
		}
		if _, err := client.CoreV1().Secrets(ns).Get(ctx, s.Name, metav1.GetOptions{}); err != nil {
			t.Errorf("Secret %s is gone after Remove: %v", s.Name, err)
		}
		_, err := store.Add(ctx, "tok", "sec", s.Name)
		if !errors.Is(err, credential.ErrExists) || !strings.Contains(err.Error(), "not a charter credential") {
			t.Errorf("Add(%s) = %v, want an error saying a foreign Secret has the name", s.Name, err)
		}
	}
	obj, err := client.CoreV1().Secrets(ns).Get(ctx, "plain", metav1.GetOptions{})
	if err != nil || string(obj.Data["secret"]) != topSecret {
		t.Errorf("Secret plain was changed: %v", err)
	}
}

func TestAddRejectsBadInput(t *testing.T) {
	store, _, _ := newStore(t)
	tests := map[string]struct {
		token, secret, name string
		wantErr             string
	}{
		"empty token":           {"", topSecret, "", "add credential: token is empty"},
		"empty secret":          {"foo", "", "", "add credential: secret is empty"},
		"token with escape":     {"foo\x1b[31m", topSecret, "", "token holds a control"},
		"token with newline":    {"foo\n", topSecret, "", "token holds a control"},
		"token too long":        {strings.Repeat("a", 1025), topSecret, "", "token is 1025 bytes long"},
		"secret too long":       {"foo", strings.Repeat("a", 64<<10+1), "", "secret is 65537 bytes long"},
		"bad name":              {"foo", topSecret, "Not_DNS", `credential name "Not_DNS" is invalid`},
		"secret typed as token": {topSecret + "\t", topSecret, "", "token holds a control"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := store.Add(t.Context(), tt.token, tt.secret, tt.name)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Add = %v, want an error containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), topSecret) {
				t.Errorf("error shows the secret: %v", err)
			}
		})
	}
	got, err := store.List(t.Context(), "")
	if err != nil || len(got) != 0 {
		t.Errorf("List after rejected adds = %v, %v: want nothing stored", got, err)
	}
}

func TestAddCreatesTheNamespace(t *testing.T) {
	env := testenv.Get(t)
	client, err := kubernetes.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("charter-cred-%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete namespace %s: %v", ns, err)
		}
	})
	store := credential.NewStore(client, ns)
	if got, err := store.List(t.Context(), ""); err != nil || len(got) != 0 {
		t.Fatalf("List in a missing namespace = %v, %v: want nothing", got, err)
	}
	if _, err := store.Get(t.Context(), "token-foo"); !errors.Is(err, credential.ErrNotFound) {
		t.Fatalf("Get in a missing namespace = %v, want not found", err)
	}
	if _, err := store.Add(t.Context(), "foo", topSecret, ""); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if _, err := client.CoreV1().Namespaces().Get(t.Context(), ns, metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace %s not created: %v", ns, err)
	}
	if got, err := store.Get(t.Context(), "token-foo"); err != nil || got.Secret() != topSecret {
		t.Fatalf("Get = %v, %v: want the credential", got, err)
	}
	if credential.NewStore(client, "").Namespace() != credential.DefaultNamespace {
		t.Errorf("NewStore with no namespace does not use %s", credential.DefaultNamespace)
	}
}

func TestConcurrentAddsWithTheSameDefaultNameAllLand(t *testing.T) {
	store, _, _ := newStore(t)
	const n = 5
	var wg sync.WaitGroup
	got := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := store.Add(t.Context(), "race", fmt.Sprintf("secret-%d", i), "")
			errs[i] = err
			if err == nil {
				got[i] = c.Name
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Add %d: %v", i, err)
		}
	}
	seen := map[string]bool{}
	for _, name := range got {
		if seen[name] {
			t.Errorf("name %s given twice: %v", name, got)
		}
		seen[name] = true
	}
	list, err := store.List(t.Context(), "token-race*")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"token-race", "token-race-2", "token-race-3", "token-race-4", "token-race-5"}
	if diff := cmp.Diff(want, names(list)); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	// Each Add stored its own secret under the name it returned.
	for i, name := range got {
		c, err := store.Get(t.Context(), name)
		if err != nil || c.Secret() != fmt.Sprintf("secret-%d", i) {
			t.Errorf("Get(%s) = %v, %v: want secret-%d", name, c, err, i)
		}
	}
}

package reconcile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/charter-sh/charter/state"
)

func writeMemoFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The inputs key follows contents, not copies: two snapshots with the same
// files agree; a changed values file, chart file or declaration does not.
func TestInputsKey(t *testing.T) {
	files := map[string]string{
		"charter.yaml":             "apiVersion: charter.sh/v1\nkind: State\n",
		"releases/web.yaml":        "apiVersion: charter.sh/v1\nkind: Release\nname: web\nchart: charts/hello\nvaluesFiles: [values/web.yaml]\n",
		"values/web.yaml":          "replicas: 2\n",
		"charts/hello/Chart.yaml":  "apiVersion: v2\nname: hello\nversion: 0.1.0\n",
		"charts/hello/values.yaml": "replicas: 1\n",
	}
	key := func(files map[string]string) string {
		t.Helper()
		root := t.TempDir()
		writeMemoFiles(t, root, files)
		dir, err := state.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := dir.Get(t.Context(), "web")
		if err != nil {
			t.Fatal(err)
		}
		k := inputsKey(&Declared{Release: rel, Dir: dir, Source: "src"})
		if k == "" {
			t.Fatal("no key")
		}
		return k
	}
	base := key(files)
	if again := key(files); again != base {
		t.Errorf("same contents in another snapshot: key %s != %s", again, base)
	}
	for name, change := range map[string][2]string{
		"values file": {"values/web.yaml", "replicas: 3\n"},
		"chart file":  {"charts/hello/values.yaml", "replicas: 5\n"},
		"declaration": {"releases/web.yaml", files["releases/web.yaml"] + "namespace: other\n"},
	} {
		changed := map[string]string{}
		for k, v := range files {
			changed[k] = v
		}
		changed[change[0]] = change[1]
		if key(changed) == base {
			t.Errorf("a changed %s keeps the key", name)
		}
	}
}

func TestMemo(t *testing.T) {
	m := newMemo(time.Hour)
	if m.fresh("web", "k1") {
		t.Error("empty memo is fresh")
	}
	m.remember("web", "k1")
	if !m.fresh("web", "k1") || m.fresh("web", "k2") || m.fresh("db", "k1") || m.fresh("web", "") {
		t.Error("memo lookup wrong")
	}
	m.remember("web", "")
	if m.fresh("web", "k1") {
		t.Error("forgotten entry still fresh")
	}
	old := newMemo(time.Nanosecond)
	old.remember("web", "k1")
	time.Sleep(time.Millisecond)
	if old.fresh("web", "k1") {
		t.Error("expired entry still fresh")
	}
	var none *memo
	none.remember("web", "k1")
	if none.fresh("web", "k1") {
		t.Error("nil memo is fresh")
	}
}
